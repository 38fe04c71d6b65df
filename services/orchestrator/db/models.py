"""SQLAlchemy 2 models: strategies, executions, backtest runs, and the
append-only event log (one row per event, sequence per execution)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Strategy(Base):
    __tablename__ = "strategies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(256))
    schema_json: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StrategyExecution(Base):
    __tablename__ = "strategy_executions"
    __table_args__ = (
        UniqueConstraint("user_id", "request_id", name="uq_execution_request"),
        Index("ix_execution_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    strategy_id: Mapped[str] = mapped_column(ForeignKey("strategies.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # sha256 of the request without its request_id: a reused request_id must come with the same body (AIP-155)
    request_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the client's name for it
    kind: Mapped[str] = mapped_column(String(16), default="backtest", server_default="backtest")  # or "optimization"
    status: Mapped[str] = mapped_column(String(32))
    params_pb: Mapped[bytes] = mapped_column(LargeBinary)  # stratexec.backtest.v1.BacktestParams
    generated_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The one compilation, made at submit: stratexec.codegen.v1.GenerateCodeResponse (analysis, code, sha256).
    compiled_pb: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # A rule the grammar did not understand, left to the Strategy Analyzer (a language model) at submit:
    # "propose" (the execution fails with its proposal) or "accept" (accept_interpreted_rules); else None.
    rule_interpretation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    execution_logs: Mapped[list] = mapped_column(JSON, default=list)  # snapshot at the terminal status
    backtest_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_pb: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # google.rpc.Status
    agent_insights: Mapped[dict] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # replica running it
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # its lease
    # New at every claim; every write of the attempt must present it (a fence against a replica that lost its lease).
    lease_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Re-queued after a dependency outage: not claimed before retry_at; outage_requeues so far (bounded by a budget).
    retry_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outage_requeues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BacktestRun(Base):
    __tablename__ = "backtest_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("strategy_executions.id"), unique=True)
    metrics: Mapped[dict] = mapped_column(JSON)  # for queries; the full result is result_pb
    result_pb: Mapped[bytes] = mapped_column(LargeBinary)  # stratexec.backtest.v1.BacktestResult
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExecutionEvent(Base):
    __tablename__ = "execution_events"
    __table_args__ = (UniqueConstraint("execution_id", "sequence", name="uq_event_sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("strategy_executions.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    event_pb: Mapped[bytes] = mapped_column(LargeBinary)  # stratexec.orchestrator.v1.ExecutionEvent
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserPreferences(Base):
    """A user's preferences, one row per user: the source of truth (memory keeps their text for search)."""
    __tablename__ = "user_preferences"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    risk_tolerance: Mapped[str | None] = mapped_column(String(16), nullable=True)  # low, medium, high
    max_drawdown: Mapped[float | None] = mapped_column(Float, nullable=True)  # percent: 15 means -15%
    preferred_assets: Mapped[list | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    """A user's uploaded daily bars (services/orchestrator/datasets.py checked them), traded as "@NAME"."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_dataset_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(32))  # upper-cased
    csv: Mapped[bytes] = mapped_column(LargeBinary)  # date, open, high, low, close[, adj_close], volume
    sha256: Mapped[str] = mapped_column(String(64))
    bars: Mapped[int] = mapped_column(Integer)
    first_date: Mapped[str] = mapped_column(String(10))
    last_date: Mapped[str] = mapped_column(String(10))
    has_adj_close: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SavedIndicator(Base):
    """A user's custom indicator, added as an indicator node to any later strategy whose rules name it."""

    __tablename__ = "saved_indicators"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_indicator_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(40))
    expression: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Optimization(Base):
    """An OptimizeStrategy execution's request (ranges, objective, walk-forward) and, once completed, its
    results: the summary and every combination's metrics (the merged SweepResult of its chunks)."""

    __tablename__ = "optimizations"

    execution_id: Mapped[str] = mapped_column(ForeignKey("strategy_executions.id"), primary_key=True)
    request_pb: Mapped[bytes] = mapped_column(LargeBinary)  # OptimizeStrategyRequest without its schema
    sweep_pb: Mapped[bytes] = mapped_column(LargeBinary)  # codegen GenerateSweepCodeResponse of the whole grid, at submit
    family: Mapped[str] = mapped_column(String(64))  # the trial ledger's key: strategy family + data window
    summary_pb: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # OptimizationSummary
    result_pb: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # backtest.v1.SweepResult, merged
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Trial(Base):
    """The trial ledger: every distinct combination ever run for a user's strategy family on a data window,
    by any execution (a sweep's chunks as they finish, a model's proposals), so the Deflated Sharpe Ratio
    counts trials honestly across executions."""

    __tablename__ = "trial_ledger"
    __table_args__ = (UniqueConstraint("user_id", "family", "combination", name="uq_trial"),
                      Index("ix_trial_family", "user_id", "family"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(64))
    combination: Mapped[str] = mapped_column(String(64))  # sha256 of the parameter values
    values_json: Mapped[dict] = mapped_column(JSON)
    sharpe_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)  # annualised; None when undefined
    periods_per_year: Mapped[int] = mapped_column(Integer)
    execution_id: Mapped[str] = mapped_column(String(36))  # the execution that ran it first
    source: Mapped[str] = mapped_column(String(16))  # "sweep" or "model"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
