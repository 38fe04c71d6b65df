"""Backtest parameters: defaults and validation, applied once on submit so
every other service sees complete, checked parameters."""
from __future__ import annotations

import datetime as dt

from stratexec.backtest.v1 import backtest_pb2
from stratexec_runtime import resolve_symbol

DEFAULT_SYMBOLS = ["BTC-USD"]
DEFAULT_START = "2024-01-01"
DEFAULT_END = "2024-12-31"
TIMEFRAMES = ("1d", "1w")
SIZINGS = ("percent", "equal")
MAX_SYMBOLS = 20


def with_defaults(params: backtest_pb2.BacktestParams) -> backtest_pb2.BacktestParams:
    out = backtest_pb2.BacktestParams()
    out.CopyFrom(params)
    symbols = [resolve_symbol(s) for s in params.symbols if s.strip()] or DEFAULT_SYMBOLS
    del out.symbols[:]
    out.symbols.extend(dict.fromkeys(symbols))
    out.timeframe = params.timeframe.strip().lower() or "1d"
    out.start_date = params.start_date or DEFAULT_START
    out.end_date = params.end_date or DEFAULT_END
    if not params.HasField("initial_capital"):
        out.initial_capital = 10_000.0
    out.benchmark = resolve_symbol(params.benchmark) if params.benchmark.strip() else out.symbols[0]
    if not params.HasField("fees"):
        out.fees = 0.001
    if not params.HasField("slippage"):
        out.slippage = 0.0005
    out.position_sizing = params.position_sizing.strip().lower() or "percent"
    if not params.HasField("exposure"):
        out.exposure = 1.0
    return out


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def violations(p: backtest_pb2.BacktestParams) -> list[tuple[str, str]]:
    """Field violations of parameters that already have their defaults."""
    bad: list[tuple[str, str]] = []
    if len(p.symbols) > MAX_SYMBOLS:
        bad.append(("params.symbols", f"at most {MAX_SYMBOLS} symbols"))
    for i, sym in enumerate(p.symbols):
        if not sym.replace("-", "").replace(".", "").replace("^", "").isalnum() or len(sym) > 20:
            bad.append((f"params.symbols[{i}]", f"{sym!r} is not a symbol"))
    if p.timeframe not in TIMEFRAMES:
        bad.append(("params.timeframe", f"{p.timeframe!r} is not supported; use one of {', '.join(TIMEFRAMES)}"))
    start, end = _date(p.start_date), _date(p.end_date)
    if start is None:
        bad.append(("params.start_date", f"{p.start_date!r} is not a date (YYYY-MM-DD)"))
    if end is None:
        bad.append(("params.end_date", f"{p.end_date!r} is not a date (YYYY-MM-DD)"))
    if start and end and end < start:
        bad.append(("params.end_date", f"end_date {p.end_date} is before start_date {p.start_date}"))
    if not p.initial_capital > 0:
        bad.append(("params.initial_capital", "must be positive"))
    if not 0 <= p.fees < 1:
        bad.append(("params.fees", "must be in [0, 1): a fraction of the order value"))
    if not 0 <= p.slippage < 1:
        bad.append(("params.slippage", "must be in [0, 1): a fraction of the price"))
    if not 0 < p.exposure <= 1:
        bad.append(("params.exposure", "must be in (0, 1]: the fraction of cash invested per entry"))
    if p.position_sizing not in SIZINGS:
        bad.append(("params.position_sizing", f"{p.position_sizing!r} is not supported; use one of {', '.join(SIZINGS)}"))
    return bad
