"""Checking what a sweep script sent on its result channel, and turning it into a SweepResult.

Shapes are checked (every metric has one value per combination, the block sums
have blocks x combinations values, segments are disjoint and in order); the
numbers of the best combination are checked again when the orchestrator
re-runs it as a normal backtest, whose result verify() recomputes.
"""
from __future__ import annotations

import json
import math

from services.sandbox.result import ResultRejected, _reject_constant
from stratexec.backtest.v1 import backtest_pb2, sweep_pb2

METRICS = ("total_return", "cagr", "sharpe_ratio", "max_drawdown", "win_rate", "trades", "open_trades", "calmar", "sortino")
SCALARS = ("total_return", "cagr", "cagr_reliable", "max_drawdown", "trades", "open_trades", "periods_per_year",
           "calendar_days", "final_value", "initial_value")


def _column(raw, name: str, count: int, integer: bool) -> list:
    if not isinstance(raw, list) or len(raw) != count:
        raise ResultRejected(f"metrics.{name} must have one value per combination ({count})")
    if integer:
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in raw):
            raise ResultRejected(f"metrics.{name} must be counts")
        return raw
    if not all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in raw):
        raise ResultRejected(f"metrics.{name} must be numbers")
    return [math.nan if x is None else float(x) for x in raw]


def metrics_proto(m: dict) -> backtest_pb2.Metrics:
    out = backtest_pb2.Metrics(**{k: m[k] for k in SCALARS})
    for key in ("sharpe_ratio", "win_rate", "vs_benchmark", "benchmark_return", "sortino_ratio", "calmar_ratio"):
        if m.get(key) is not None:
            setattr(out, key, m[key])
    return out


def verify(payload: bytes, combinations: int) -> sweep_pb2.SweepResult:
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultRejected(f"the sweep result is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("combinations") != combinations:
        raise ResultRejected(f"the sweep must report {combinations} combinations")
    raw = data.get("metrics")
    if not isinstance(raw, dict):
        raise ResultRejected("the sweep result has no metrics")
    metrics = sweep_pb2.SweepMetrics(**{k: _column(raw.get(k), k, combinations, k in ("trades", "open_trades")) for k in METRICS})
    blocks = data.get("blocks") or {}
    n = blocks.get("blocks", 0)
    if not (isinstance(n, int) and n > 0 and len(blocks.get("bars", [])) == n
            and len(blocks.get("sum", [])) == n * combinations and len(blocks.get("sum_squares", [])) == n * combinations):
        raise ResultRejected("the block sums must have blocks x combinations values")
    result = sweep_pb2.SweepResult(
        combinations=combinations, metrics=metrics, bars=int(data.get("bars", 0)), periods_per_year=int(data.get("periods_per_year", 0)),
        blocks=sweep_pb2.ReturnBlocks(blocks=n, bars=blocks["bars"], sum=blocks["sum"], sum_squares=blocks["sum_squares"]))
    previous_end = ""
    for i, s in enumerate(data.get("segments", [])):
        if not (previous_end < s["in_sample_start"] <= s["in_sample_end"] < s["out_of_sample_start"] <= s["out_of_sample_end"]):
            raise ResultRejected(f"segment {i} overlaps another or is out of order")
        previous_end = s["out_of_sample_end"]
        segment = sweep_pb2.WalkForwardSegment(
            in_sample_start=s["in_sample_start"], in_sample_end=s["in_sample_end"],
            out_of_sample_start=s["out_of_sample_start"], out_of_sample_end=s["out_of_sample_end"],
            chosen_combination=int(s["chosen_combination"]))
        if s.get("in_sample"):
            segment.in_sample.CopyFrom(metrics_proto(s["in_sample"]))
            segment.out_of_sample.CopyFrom(metrics_proto(s["out_of_sample"]))
            segment.out_of_sample_equity.extend(backtest_pb2.EquityPoint(time=t, value=v) for t, v in s["out_of_sample_equity"])
        result.segments.append(segment)
    return result
