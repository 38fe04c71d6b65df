"""All database access of the orchestrator, as short synchronous
transactions (the servicers call them through asyncio.to_thread).

Every event is appended in the same transaction as the row change it
describes, so the log and the execution never disagree.

Fencing: a claim gives the execution a new ``lease_token``; every write of
that attempt (events, code, insights, the outcome) passes it and is refused
with ``LeaseLost`` once another replica took the execution over. Heartbeats
use a connection pool of their own, so busy request handlers never delay them.
"""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Callable, Iterable

from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from services.common import errors, page_tokens
from services.orchestrator.db import guards, migrate
from services.orchestrator.db.models import (BacktestRun, Dataset, ExecutionEvent, Optimization, SavedIndicator,
                                               Strategy, StrategyExecution, Trial, UserPreferences, utcnow)

from services.orchestrator.statuses import RUNNING, TERMINAL


class LeaseLost(Exception):
    """The execution is no longer this attempt's: it was taken over (or it ended)."""


def new_id() -> str:
    return str(uuid.uuid4())


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite drops the zone; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _engine(database_url: str, pool_size: int, max_overflow: int):
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            import pathlib

            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(database_url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


class Repository:
    def __init__(self, database_url: str):
        self.engine = _engine(database_url, 10, 20)
        migrate.upgrade(self.engine)  # alembic upgrade head, under a lock shared by every replica
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The lease keeper's own connection: never queued behind request handlers.
        self.lease_engine = _engine(database_url, 1, 0)
        self.lease_sessions = sessionmaker(self.lease_engine, expire_on_commit=False)
        self.damaged: str | None = None  # set at the first persistent error (a corrupt page): readiness goes NOT_SERVING
        for engine in (self.engine, self.lease_engine):
            event.listen(engine, "handle_error", self._note_error)
        self._append_lock = threading.Lock()  # one writer of sequences per process

    def _note_error(self, context) -> None:
        if self.damaged is None and errors.is_corruption(context.original_exception):
            self.damaged = type(context.original_exception).__name__ + ": " + str(context.original_exception)[:200]

    # -- strategies ---------------------------------------------------------
    def create_strategy(self, user_id: str, name: str, schema: dict) -> Strategy:
        with self.sessions.begin() as s:
            row = Strategy(id=new_id(), user_id=user_id, name=name, schema_json=schema, created_at=utcnow())
            s.add(row)
        return row

    def get_strategy(self, user_id: str, strategy_id: str) -> Strategy | None:
        with self.sessions() as s:
            row = s.get(Strategy, strategy_id)
            return row if row is not None and row.user_id == user_id else None

    def list_strategies(self, user_id: str, limit: int, token: str) -> tuple[list[Strategy], str]:
        with self.sessions() as s:
            query = select(Strategy).where(Strategy.user_id == user_id)
            return self._page(s, query, Strategy, limit, token, "ListStrategies", {"user_id": user_id})

    # -- executions ---------------------------------------------------------
    def get_preferences(self, user_id: str) -> UserPreferences | None:
        with self.sessions() as s:
            return s.get(UserPreferences, user_id)

    def set_preferences(self, user_id: str, changes: dict) -> UserPreferences:
        """Set the given fields (risk_tolerance, max_drawdown, preferred_assets); the others stay."""
        try:
            return self._set_preferences(user_id, changes)
        except IntegrityError:  # two first writes of one user at once: the loser updates the winner's row
            return self._set_preferences(user_id, changes)

    def _set_preferences(self, user_id: str, changes: dict) -> UserPreferences:
        with self.sessions.begin() as s:
            row = s.get(UserPreferences, user_id, with_for_update=True)
            if row is None:
                row = UserPreferences(user_id=user_id)
                s.add(row)
            for field, value in changes.items():
                setattr(row, field, value)
            row.updated_at = utcnow()
        return row

    def find_by_request(self, user_id: str, request_id: str) -> StrategyExecution | None:
        with self.sessions() as s:
            return s.scalars(
                select(StrategyExecution).where(
                    StrategyExecution.user_id == user_id, StrategyExecution.request_id == request_id
                )
            ).first()

    def create_execution(
        self,
        user_id: str,
        params_pb: bytes,
        request_id: str,
        strategy_id: str | None,
        new_strategy: tuple[str, dict] | None,
        first_event: Callable[[StrategyExecution, int], tuple[str, str, str, bytes]],
        compiled_pb: bytes | None = None,
        request_sha256: str | None = None,
        name: str = "",
        kind: str = "backtest",
        in_tx: Callable[[Session, StrategyExecution], None] | None = None,
        rule_interpretation: str | None = None,
    ) -> tuple[StrategyExecution, bool]:
        """Insert the execution (and an inline strategy) with its QUEUED event and
        its compilation (a codegen GenerateCodeResponse, made once at submit).

        Returns (execution, created). A request_id seen before returns the
        existing execution and stores nothing.
        """
        if request_id:
            existing = self.find_by_request(user_id, request_id)
            if existing is not None:
                return existing, False
        try:
            with self.sessions.begin() as s:
                if new_strategy is not None:
                    strategy_name, schema = new_strategy
                    strategy = Strategy(id=new_id(), user_id=user_id, name=strategy_name, schema_json=schema,
                                        created_at=utcnow())
                    s.add(strategy)
                    s.flush()
                    strategy_id = strategy.id
                row = StrategyExecution(
                    id=new_id(),
                    strategy_id=strategy_id,
                    user_id=user_id,
                    request_id=request_id or None,
                    request_sha256=request_sha256 if request_id else None,
                    name=name or None,
                    kind=kind,
                    status="QUEUED",
                    params_pb=params_pb,
                    compiled_pb=compiled_pb,
                    rule_interpretation=rule_interpretation,
                    execution_logs=[],
                    agent_insights={},
                    attempts=0,
                    cancel_requested=0,
                    created_at=utcnow(),
                )
                s.add(row)
                s.flush()
                if in_tx is not None:  # an optimization's request, stored with its execution
                    in_tx(s, row)
                etype, status, message, event_pb = first_event(row, 1)
                self._notify_in_tx(s, "stratexec_jobs", row.id)
                s.add(ExecutionEvent(execution_id=row.id, sequence=1, type=etype, status=status, message=message,
                                     event_pb=event_pb, created_at=utcnow()))
            return row, True
        except IntegrityError:
            if request_id:  # a concurrent retry won the race
                existing = self.find_by_request(user_id, request_id)
                if existing is not None:
                    return existing, False
            raise

    def get_execution(self, execution_id: str, user_id: str | None = None) -> StrategyExecution | None:
        with self.sessions() as s:
            row = s.get(StrategyExecution, execution_id)
            if row is None or (user_id is not None and row.user_id != user_id):
                return None
            return row

    def list_executions(self, user_id: str, strategy_id: str, limit: int, token: str) -> tuple[list[StrategyExecution], str]:
        with self.sessions() as s:
            query = select(StrategyExecution).where(StrategyExecution.user_id == user_id)
            if strategy_id:
                query = query.where(StrategyExecution.strategy_id == strategy_id)
            scope = {"user_id": user_id, "strategy_id": strategy_id}
            return self._page(s, query, StrategyExecution, limit, token, "ListStrategyExecutions", scope)

    def _fenced_update(self, execution_id: str, lease: str | None, values: dict, running: bool = True) -> None:
        """Update the row if ``lease`` still holds it (and, with ``running``, it has not ended); else LeaseLost."""
        query = update(StrategyExecution).where(StrategyExecution.id == execution_id)
        if lease is not None:
            query = query.where(StrategyExecution.lease_token == lease)
        if running:
            query = query.where(StrategyExecution.status.not_in(TERMINAL))
        with self.sessions.begin() as s:
            if s.execute(query.values(**values)).rowcount == 0 and lease is not None:
                raise LeaseLost(execution_id)

    def save_code(self, execution_id: str, code: str, sha256: str, lease: str | None = None) -> None:
        self._fenced_update(execution_id, lease, {"generated_code": code, "code_sha256": sha256})

    def set_insights(self, execution_id: str, insights: dict, lease: str | None = None) -> None:
        self._fenced_update(execution_id, lease, {"agent_insights": insights})

    def snapshot_logs(self, execution_id: str, lease: str | None = None) -> None:
        """Copy the event messages into execution_logs (for readers of the table)."""
        messages = self.event_messages(execution_id)
        self._fenced_update(execution_id, lease, {"execution_logs": messages}, running=False)

    def queued_count(self, user_id: str) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(StrategyExecution).where(
                StrategyExecution.user_id == user_id, StrategyExecution.status == "QUEUED"))

    def request_cancel(self, execution_id: str) -> None:
        with self.sessions.begin() as s:
            s.execute(update(StrategyExecution).where(StrategyExecution.id == execution_id).values(cancel_requested=1))

    # -- research mode: optimizations and the trial ledger ----------------------------------------------------
    def get_optimization(self, execution_id: str) -> Optimization | None:
        with self.sessions() as s:
            return s.get(Optimization, execution_id)

    def record_trials(self, user_id: str, family: str, execution_id: str, source: str,
                      trials: list[tuple[str, dict, float | None, int]]) -> None:
        """Add (combination sha256, values, annualised Sharpe, periods per year) to the ledger; a combination the
        family already has is not added again. Not fenced by a lease: a trial that ran is a fact, whichever
        replica reports it."""
        if not trials:
            return
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        now = utcnow()
        rows = [{"user_id": user_id, "family": family, "combination": sha, "values_json": values, "sharpe_ratio": sharpe,
                 "periods_per_year": ppy, "execution_id": execution_id, "source": source, "created_at": now}
                for sha, values, sharpe, ppy in trials]
        with self.sessions.begin() as s:
            for start in range(0, len(rows), 5000):
                s.execute(insert(Trial).on_conflict_do_nothing(index_elements=["user_id", "family", "combination"]),
                          rows[start:start + 5000])

    def trials(self, user_id: str, family: str) -> tuple[int, list[float]]:
        """(distinct combinations in the ledger, their per-bar Sharpe ratios where defined)."""
        with self.sessions() as s:
            rows = s.execute(select(Trial.sharpe_ratio, Trial.periods_per_year)
                             .where(Trial.user_id == user_id, Trial.family == family)).all()
        return len(rows), [sr / ppy ** 0.5 for sr, ppy in rows if sr is not None and ppy]

    def get_run(self, run_id: str) -> BacktestRun | None:
        with self.sessions() as s:
            return s.get(BacktestRun, run_id)

    # -- the event log ------------------------------------------------------
    def append_event(
        self,
        execution_id: str,
        build: Callable[[int], tuple[str, str, str, bytes]],
        row_changes: dict | None = None,
        expect_status: Iterable[str] | None = None,
        in_tx: Callable[[Session, StrategyExecution], dict | None] | None = None,
        guard: Callable[[StrategyExecution], bool] | None = None,
        lease: str | None = None,
    ) -> tuple[int, StrategyExecution] | None:
        """Append one event and apply ``row_changes`` to the execution, atomically.

        ``build(execution_id, sequence)`` returns (type, status, message, event_pb). With
        ``expect_status``, nothing happens (None) unless the execution's
        current status is one of them: that is how a cancel and a completion
        never both win. With ``lease``, it raises LeaseLost unless that
        attempt still holds the execution. Nothing is appended after a
        terminal status (and the database refuses it too: db/guards.py).
        """

        def pick(s: Session):
            row = s.get(StrategyExecution, execution_id, with_for_update=True)
            if row is not None and lease is not None and (row.lease_token != lease or row.status in TERMINAL):
                raise LeaseLost(execution_id)
            if row is None or row.status in TERMINAL or (
                    expect_status is not None and row.status not in tuple(expect_status)):
                return None
            if guard is not None and not guard(row):
                return None
            return row

        return self._append(pick, build, row_changes, in_tx)

    def claim_next(self, build, row_changes: dict, in_tx=None, user_limit: int = 0) -> tuple[int, StrategyExecution] | None:
        """Claim a QUEUED execution no other worker holds, with its event, fairly across users.

        Round robin: the oldest queued execution of the user with the fewest
        running ones, so one user's long queue never holds another's back;
        with ``user_limit``, a user already running that many gets none.
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: replicas claiming at once
        each get a different execution and never wait on each other.
        """
        running = aliased(StrategyExecution)
        users_running = (select(func.count()).select_from(running)
                         .where(running.user_id == StrategyExecution.user_id, running.status.in_(RUNNING))
                         .correlate(StrategyExecution).scalar_subquery())

        def pick(s: Session):
            query = (select(StrategyExecution)
                     .where(StrategyExecution.status == "QUEUED",
                            StrategyExecution.retry_at.is_(None) | (StrategyExecution.retry_at <= utcnow())))
            if user_limit > 0:
                query = query.where(users_running < user_limit)
            return s.scalars(query.order_by(users_running, StrategyExecution.created_at).limit(1)
                             .with_for_update(skip_locked=True)).first()

        return self._append(pick, build, row_changes, in_tx)

    def _append(self, pick, build, row_changes, in_tx):
        with self._append_lock:
            for _ in range(5):
                try:
                    with self.sessions.begin() as s:
                        row = pick(s)
                        if row is None:
                            return None
                        last = s.scalar(
                            select(ExecutionEvent.sequence)
                            .where(ExecutionEvent.execution_id == row.id)
                            .order_by(ExecutionEvent.sequence.desc())
                            .limit(1)
                        ) or 0
                        seq = last + 1
                        etype, status, message, event_pb = build(row.id, seq)
                        s.add(ExecutionEvent(execution_id=row.id, sequence=seq, type=etype, status=status,
                                             message=message, event_pb=event_pb, created_at=utcnow()))
                        changes = dict(row_changes or {})
                        if in_tx is not None:
                            changes.update(in_tx(s, row) or {})
                        for key, value in changes.items():
                            setattr(row, key, value)
                        self._notify_in_tx(s, "stratexec_events", row.id)
                    return seq, row
                except IntegrityError as exc:  # another replica took this sequence number: take the next
                    if guards.is_violation(exc):
                        raise
                    continue
        raise RuntimeError("could not append an event")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _notify_in_tx(self, s: Session, channel: str, payload: str) -> None:
        """PostgreSQL delivers it at commit to every replica that LISTENs."""
        if self.is_postgres:
            s.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})

    def heartbeat(self, leases: dict[str, str]) -> tuple[set[str], set[str]]:
        """Renew the leases {execution id: lease token} still held, on the lease keeper's connection.

        Returns (lost, cancel_requested): executions this replica no longer
        holds (another replica re-queued, failed or cancelled them), and held
        ones a client asked to cancel.
        """
        if not leases:
            return set(), set()
        held = (StrategyExecution.id.in_(list(leases)), StrategyExecution.lease_token.in_(list(leases.values())))
        with self.lease_sessions.begin() as s:
            rows = s.execute(update(StrategyExecution).where(*held).values(heartbeat_at=utcnow())
                             .returning(StrategyExecution.id, StrategyExecution.lease_token,
                                        StrategyExecution.cancel_requested)).all()
        renewed = {i for i, token, _ in rows if leases.get(i) == token}
        return set(leases) - renewed, {i for i, _, cancel in rows if cancel and i in renewed}

    def abandoned(self, lease_seconds: float) -> list[StrategyExecution]:
        """Running executions whose replica stopped renewing its lease (it died)."""
        cutoff = utcnow() - dt.timedelta(seconds=lease_seconds)
        with self.sessions() as s:
            return list(s.scalars(
                select(StrategyExecution)
                .where(StrategyExecution.status.in_(RUNNING),
                       (StrategyExecution.heartbeat_at.is_(None)) | (StrategyExecution.heartbeat_at < cutoff))
                .order_by(StrategyExecution.created_at)))

    def events_after(self, execution_id: str, after: int, limit: int = 500) -> list[ExecutionEvent]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(ExecutionEvent)
                    .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.sequence > after)
                    .order_by(ExecutionEvent.sequence)
                    .limit(limit)
                )
            )

    def event_messages(self, execution_id: str) -> list[str]:
        with self.sessions() as s:
            rows = s.execute(
                select(ExecutionEvent.created_at, ExecutionEvent.message)
                .where(ExecutionEvent.execution_id == execution_id)
                .order_by(ExecutionEvent.sequence)
            ).all()
        return [f"{_aware(t).isoformat(timespec='seconds')} {m}" for t, m in rows]

    # -- datasets and saved indicators: named rows a user owns ----------------
    def _put_named(self, model, user_id: str, name: str, fields: dict, replace: bool):
        """Store (or with ``replace``, overwrite) one of the user's named rows in one transaction;
        None when the name is taken and ``replace`` is false."""
        fields = {**fields, "created_at": utcnow()}
        try:
            with self.sessions.begin() as s:
                row = s.execute(select(model).where(model.user_id == user_id, model.name == name)
                                .with_for_update()).scalar_one_or_none()
                if row is not None and not replace:
                    return None
                if row is None:
                    row = model(id=new_id(), user_id=user_id, name=name, **fields)
                    s.add(row)
                else:
                    for key, value in fields.items():
                        setattr(row, key, value)
                s.flush()
                return row
        except IntegrityError:  # the same name stored at once: the first one wins
            return None

    def _named(self, model, user_id: str, names: Iterable[str] | None = None) -> list:
        with self.sessions() as s:
            query = select(model).where(model.user_id == user_id)
            if names is not None:
                query = query.where(model.name.in_(list(names)))
            return list(s.execute(query.order_by(model.name)).scalars())

    def _delete_named(self, model, user_id: str, name: str) -> bool:
        with self.sessions.begin() as s:
            row = s.execute(select(model).where(model.user_id == user_id, model.name == name)).scalar_one_or_none()
            if row is None:
                return False
            s.delete(row)
            return True

    def put_dataset(self, user_id: str, name: str, checked, replace: bool) -> Dataset | None:
        return self._put_named(Dataset, user_id, name, dict(
            csv=checked.csv, sha256=checked.sha256, bars=checked.bars, first_date=checked.first_date,
            last_date=checked.last_date, has_adj_close=int(checked.has_adj_close)), replace)

    def list_datasets(self, user_id: str) -> list[Dataset]:
        return self._named(Dataset, user_id)

    def datasets_named(self, user_id: str, names: Iterable[str]) -> dict[str, Dataset]:
        names = list(names)
        return {row.name: row for row in self._named(Dataset, user_id, names)} if names else {}

    def delete_dataset(self, user_id: str, name: str) -> bool:
        return self._delete_named(Dataset, user_id, name)

    def put_indicator(self, user_id: str, name: str, expression: str, replace: bool) -> SavedIndicator | None:
        return self._put_named(SavedIndicator, user_id, name, {"expression": expression}, replace)

    def list_indicators(self, user_id: str) -> list[SavedIndicator]:
        return self._named(SavedIndicator, user_id)

    def delete_indicator(self, user_id: str, name: str) -> bool:
        return self._delete_named(SavedIndicator, user_id, name)

    # -- paging -------------------------------------------------------------
    @staticmethod
    def _page(s: Session, query, model, limit: int, token: str, method: str, scope: dict[str, str]):
        """Newest first; ``token`` must have been issued for the same caller and filter (``scope``)."""
        if token:
            when, ident = page_tokens.decode(token, scope, method, 2)
            try:
                created = dt.datetime.fromisoformat(when)
            except ValueError:
                raise page_tokens.malformed(method) from None
            query = query.where(
                (model.created_at < created) | ((model.created_at == created) & (model.id < ident))
            )
        rows = list(s.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = page_tokens.encode(scope, [rows[-1].created_at.isoformat(), rows[-1].id])
        return rows, next_token
