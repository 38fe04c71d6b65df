"""Backtest parameters with the documented defaults applied and checked.

The orchestrator applies the same defaults before calling codegen; they are
applied again here so that a direct caller (grpcurl, a notebook) gets the
same result from empty fields.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

from services.common import errors
from stratexec_runtime import resolve_symbol

DEFAULTS = {
    "symbols": ("BTC-USD",),
    "timeframe": "1d",
    "start_date": "2024-01-01",
    "end_date": "2024-12-31",
    "initial_capital": 10000.0,
    "fees": 0.001,
    "slippage": 0.0005,
    "position_sizing": "percent",
    "exposure": 1.0,
}
TIMEFRAMES = {"1d": ("1D", "daily"), "1w": ("7D", "weekly")}  # timeframe -> (vectorbt freq, words)
SIZINGS = ("percent", "equal")
SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-^=]{0,19}$")


@dataclasses.dataclass(frozen=True)
class Params:
    symbols: tuple[str, ...]
    benchmark: str
    timeframe: str
    start_date: str
    end_date: str
    initial_capital: float
    fees: float
    slippage: float
    position_sizing: str
    exposure: float

    @property
    def freq(self) -> str:
        return TIMEFRAMES[self.timeframe][0]

    @property
    def bar_words(self) -> str:
        return TIMEFRAMES[self.timeframe][1]

    def max_bars(self) -> int:
        """Upper bound of the bars in the date range (every calendar day trades)."""
        days = (dt.date.fromisoformat(self.end_date) - dt.date.fromisoformat(self.start_date)).days + 1
        return days if self.timeframe == "1d" else max(1, days // 7 + 1)


def _date(value: str, field: str, problems: list[tuple[str, str]]) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        problems.append((f"params.{field}", f"'{value}' is not a date of the form YYYY-MM-DD"))
        return value


def resolve(params) -> Params:
    """``params`` is a stratexec.backtest.v1.BacktestParams (or None)."""
    problems: list[tuple[str, str]] = []

    def has(name: str) -> bool:
        return params is not None and params.HasField(name)

    raw_symbols = [s for s in (params.symbols if params is not None else []) if s.strip()] or list(DEFAULTS["symbols"])
    symbols: list[str] = []
    for i, raw in enumerate(raw_symbols):
        sym = resolve_symbol(raw)
        if not SYMBOL_RE.match(sym):
            problems.append((f"params.symbols[{i}]", f"'{raw}' is not a ticker symbol"))
        elif sym not in symbols:
            symbols.append(sym)
    benchmark_raw = (params.benchmark if params is not None else "").strip()
    benchmark = resolve_symbol(benchmark_raw) if benchmark_raw else (symbols[0] if symbols else "")
    if benchmark_raw and not SYMBOL_RE.match(benchmark):
        problems.append(("params.benchmark", f"'{benchmark_raw}' is not a ticker symbol"))

    timeframe = ((params.timeframe if params is not None else "") or DEFAULTS["timeframe"]).strip().lower()
    timeframe = {"d": "1d", "day": "1d", "daily": "1d", "w": "1w", "week": "1w", "weekly": "1w"}.get(timeframe, timeframe)
    if timeframe not in TIMEFRAMES:
        problems.append(("params.timeframe", f"'{timeframe}' is not supported: use 1d or 1w"))
    start = _date((params.start_date if params is not None else "") or DEFAULTS["start_date"], "start_date", problems)
    end = _date((params.end_date if params is not None else "") or DEFAULTS["end_date"], "end_date", problems)
    if not problems and start > end:
        problems.append(("params.end_date", f"end_date {end} is before start_date {start}"))

    capital = params.initial_capital if has("initial_capital") else DEFAULTS["initial_capital"]
    if not capital > 0:
        problems.append(("params.initial_capital", f"must be positive, got {capital}"))
    fees = params.fees if has("fees") else DEFAULTS["fees"]
    if not 0 <= fees < 1:
        problems.append(("params.fees", f"must be in [0, 1), got {fees}"))
    slippage = params.slippage if has("slippage") else DEFAULTS["slippage"]
    if not 0 <= slippage < 1:
        problems.append(("params.slippage", f"must be in [0, 1), got {slippage}"))
    sizing = ((params.position_sizing if params is not None else "") or DEFAULTS["position_sizing"]).strip().lower()
    if sizing not in SIZINGS:
        problems.append(("params.position_sizing", f"'{sizing}' is not supported: use percent or equal"))
    exposure = params.exposure if has("exposure") else DEFAULTS["exposure"]
    if not 0 < exposure <= 1:
        problems.append(("params.exposure", f"must be in (0, 1], got {exposure}"))

    if problems:
        raise errors.invalid_argument("invalid backtest parameters", problems, reason="PARAMS_INVALID")
    return Params(
        symbols=tuple(symbols), benchmark=benchmark, timeframe=timeframe, start_date=start, end_date=end,
        initial_capital=float(capital), fees=float(fees), slippage=float(slippage), position_sizing=sizing,
        exposure=float(exposure),
    )
