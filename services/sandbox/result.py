"""Checking what a run sent on its result channel, and turning it into protos.

The script's numbers are not believed: the service recomputes the metrics
from the returned equity curve and trades (stratexec_runtime.metrics, the
one place metric definitions live) and rejects a result whose reported
metrics disagree. The response carries the service's own computation.
"""
from __future__ import annotations

import json
import math

import pandas as pd

from services.sandbox.market_data.prepare import DataSourceInfo
from stratexec.backtest.v1 import backtest_pb2
from stratexec_runtime.metrics import compute_metrics, metrics_agree

MAX_POINTS = 1_000_000
MAX_TRADES = 1_000_000
TRADE_FIELDS = {
    "symbol": str, "direction": str, "entry_time": str, "exit_time": str, "entry_price": (int, float),
    "exit_price": (int, float), "size": (int, float), "pnl": (int, float), "return_pct": (int, float), "status": str,
}
OPTIONAL_TRADE_FIELDS = {"fees": ((int, float), 0.0), "exit_reason": (str, "")}  # field: (type, value when absent)


class ResultRejected(ValueError):
    """The channel payload is malformed or its metrics do not add up."""


def _reject_constant(name: str):
    raise ResultRejected(f"non-finite number {name} in the result")


def _series(points, field: str) -> pd.Series:
    if not isinstance(points, list):
        raise ResultRejected(f"{field} must be a list of [time, value] pairs")
    if len(points) > MAX_POINTS:
        raise ResultRejected(f"{field} has more than {MAX_POINTS} points")
    times, values = [], []
    for i, point in enumerate(points):
        if not (isinstance(point, list) and len(point) == 2 and isinstance(point[0], str)
                and isinstance(point[1], (int, float)) and not isinstance(point[1], bool)):
            raise ResultRejected(f"{field}[{i}] must be [time, value]")
        if not math.isfinite(point[1]):
            raise ResultRejected(f"{field}[{i}] is not finite")
        times.append(point[0])
        values.append(float(point[1]))
    try:
        index = pd.DatetimeIndex(pd.to_datetime(times, format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise ResultRejected(f"{field}: bad time: {exc}") from None
    if not (index.is_monotonic_increasing and index.is_unique):
        raise ResultRejected(f"{field} times must be strictly increasing")
    return pd.Series(values, index=index, dtype=float)


def _trades(raw) -> list[dict]:
    if not isinstance(raw, list) or len(raw) > MAX_TRADES:
        raise ResultRejected("trades must be a list")
    out = []
    for i, trade in enumerate(raw):
        if not isinstance(trade, dict):
            raise ResultRejected(f"trades[{i}] must be an object")
        for key, kind in TRADE_FIELDS.items():
            value = trade.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ResultRejected(f"trades[{i}].{key} is missing or of the wrong type")
        if trade["status"] not in ("closed", "open"):
            raise ResultRejected(f"trades[{i}].status must be closed or open")
        if trade["direction"] not in ("long", "short"):
            raise ResultRejected(f"trades[{i}].direction must be long or short")
        for key, (kind, absent) in OPTIONAL_TRADE_FIELDS.items():
            if not isinstance(trade.setdefault(key, absent), kind) or isinstance(trade[key], bool):
                raise ResultRejected(f"trades[{i}].{key} is of the wrong type")
        out.append({key: trade[key] for key in (*TRADE_FIELDS, *OPTIONAL_TRADE_FIELDS)})
    return out


SKIP_REASONS = ("exit_bar", "no_cash", "end_of_data")


def _skipped(raw) -> list[dict]:
    if not isinstance(raw, list) or len(raw) > MAX_TRADES:
        raise ResultRejected("skipped_signals must be a list")
    for i, row in enumerate(raw):
        if not (isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ("symbol", "time", "reason"))
                and row["reason"] in SKIP_REASONS):
            raise ResultRejected(f"skipped_signals[{i}] must have symbol, time and a reason in {', '.join(SKIP_REASONS)}")
    return [{k: row[k] for k in ("symbol", "time", "reason")} for row in raw]


LINE_KINDS = {"indicator": backtest_pb2.CHART_LINE_KIND_INDICATOR, "stop": backtest_pb2.CHART_LINE_KIND_STOP,
              "target": backtest_pb2.CHART_LINE_KIND_TARGET}
MAX_LINES = 100


def _lines(raw) -> list[dict]:
    if not isinstance(raw, list) or len(raw) > MAX_LINES:
        raise ResultRejected(f"lines must be a list of at most {MAX_LINES}")
    out = []
    for i, line in enumerate(raw):
        if not (isinstance(line, dict) and all(isinstance(line.get(k), str) for k in ("symbol", "name", "kind"))
                and line["kind"] in LINE_KINDS and len(line["name"]) <= 200):
            raise ResultRejected(f"lines[{i}] must have symbol, a name and a kind in {', '.join(LINE_KINDS)}")
        _series(line.get("points"), f"lines[{i}].points")
        out.append({k: line[k] for k in ("symbol", "name", "kind", "points")})
    if sum(len(line["points"]) for line in out) > MAX_POINTS:
        raise ResultRejected(f"the lines have more than {MAX_POINTS} points in all")
    return out


# Weekly bars are labelled with the week's last day, up to 6 days after the window.
WINDOW_SLACK = pd.Timedelta(days=6)


def verify(payload: bytes, initial_capital: float, window: tuple[str, str] | None = None) -> dict:
    """Parsed and checked result with the service's own metrics; raises ResultRejected.

    ``window`` (start, end dates): the equity curve must lie within the prepared data.
    """
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultRejected(f"the result is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ResultRejected("the result must be an object with metrics, equity, benchmark_equity and trades")
    equity = _series(data.get("equity"), "equity")
    if equity.empty:
        raise ResultRejected("the equity curve is empty")
    if window is not None:
        start, end = pd.Timestamp(window[0]), pd.Timestamp(window[1]) + pd.Timedelta(days=1) + WINDOW_SLACK
        if equity.index[0] < start or equity.index[-1] >= end:
            raise ResultRejected(f"the equity curve ({equity.index[0].date()}..{equity.index[-1].date()}) "
                                 f"lies outside the prepared data ({window[0]}..{window[1]})")
    bench = _series(data.get("benchmark_equity", []), "benchmark_equity")
    trades = _trades(data.get("trades", []))
    metrics = compute_metrics(equity, trades, initial_capital, bench if len(bench) else None)
    bad = metrics_agree(data["metrics"], metrics)
    if bad:
        raise ResultRejected(
            "reported metrics disagree with the equity curve and trades: " + ", ".join(
                f"{k} reported {data['metrics'].get(k)!r}, recomputed {metrics.get(k)!r}" for k in bad
            )
        )
    return {"metrics": metrics, "equity": data["equity"], "benchmark_equity": data.get("benchmark_equity", []), "trades": trades,
            "skipped_signals": _skipped(data.get("skipped_signals", [])), "lines": _lines(data.get("lines", []))}


def to_proto(checked: dict, sources: list[DataSourceInfo]) -> backtest_pb2.BacktestResult:
    m = checked["metrics"]
    # every metric the runtime computed has a field of the same name (None: left unset)
    metrics = backtest_pb2.Metrics(**{f.name: m[f.name] for f in backtest_pb2.Metrics.DESCRIPTOR.fields
                                      if m.get(f.name) is not None})
    status = {"closed": backtest_pb2.TRADE_STATUS_CLOSED, "open": backtest_pb2.TRADE_STATUS_OPEN}
    direction = {"long": backtest_pb2.TRADE_DIRECTION_LONG, "short": backtest_pb2.TRADE_DIRECTION_SHORT}
    return backtest_pb2.BacktestResult(
        metrics=metrics,
        equity=[backtest_pb2.EquityPoint(time=t, value=v) for t, v in checked["equity"]],
        benchmark_equity=[backtest_pb2.EquityPoint(time=t, value=v) for t, v in checked["benchmark_equity"]],
        trades=[
            backtest_pb2.Trade(**{k: v for k, v in t.items() if k not in ("status", "direction")},
                               status=status[t["status"]], direction=direction[t["direction"]])
            for t in checked["trades"]
        ],
        data=[data_source_proto(s) for s in sources],
        per_symbol=[backtest_pb2.SymbolBreakdown(**row) for row in m["per_symbol"]],
        skipped_signals=[backtest_pb2.SkippedSignal(**row) for row in checked.get("skipped_signals", [])],
        lines=[backtest_pb2.ChartLine(symbol=line["symbol"], name=line["name"], kind=LINE_KINDS[line["kind"]],
                                      points=[backtest_pb2.EquityPoint(time=t, value=v) for t, v in line["points"]])
               for line in checked.get("lines", [])],
        # Recomputed from the trades, not taken from the script.
        open_trades_pnl=sum(t["pnl"] for t in checked["trades"] if t["status"] == "open"),
    )


def data_source_proto(s: DataSourceInfo) -> backtest_pb2.DataSource:
    return backtest_pb2.DataSource(provider=s.provider, symbol=s.symbol, first_time=s.first_time,
                                   last_time=s.last_time, bars=s.bars, sha256=s.sha256, warmup_bars=s.warmup_bars)
