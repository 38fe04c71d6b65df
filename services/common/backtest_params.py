"""Backtest parameters: the one home of their defaults, accepted values and checks.

The orchestrator (at submit), codegen (analysis and code) and the sandbox
(data and run) all call ``resolve``/``check`` here, so a value accepted by
one service is accepted by all of them, with the same default.

Adding a parameter is one entry in ``Params`` (plus its field in
protos/stratexec/backtest/v1/backtest.proto): the entry's spec gives its
default, how a raw proto value is normalised and what is accepted; reading
the proto, the BadRequest field violations and writing the resolved proto
back are generic. Checks that relate two fields go in ``_cross_checks``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any, Callable

from services.common import errors
from stratexec_runtime import resolve_symbol
from stratexec_runtime.execution import OPTIONS as EXECUTION_RULES

MAX_SYMBOLS = 20
MAX_CAPITAL = 1e12  # a trillion: beyond it float sums of cash and fees lose cents, and 1e308 overflows
SYMBOL_RE = re.compile(r"^([A-Z0-9^][A-Z0-9.\-^=]{0,19}|@[A-Z0-9_.\-]{1,32})$")  # BTC-USD, AAPL, ^GSPC, GC=F, BRK.B, @MINE (a dataset)

# timeframe -> (vectorbt freq, words used in the analysis, accepted aliases)
TIMEFRAMES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "1d": ("1D", "daily", ("d", "day", "daily")),
    "1w": ("7D", "weekly", ("w", "week", "weekly")),
}
# position_sizing -> (meaning, accepted aliases)
SIZINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "percent": ("each entry invests `exposure` of the cash available", ()),
    "equal": ("one portfolio with shared cash, equal weights", ()),
    "equity": ("each entry takes `exposure` of the portfolio's equity", ("equity_percent",)),
    "risk": ("each entry risks `risk_per_trade` of the equity between its entry and its stop", ()),
    "fixed": ("each entry buys `exposure` x `initial_capital` worth", ("fixed_cash",)),
}
EQUITY_SIZINGS = ("equity", "risk")  # sized on the equity at the bar (vectorbt from_orders, targetpercent)

# prices -> (meaning, accepted aliases); stratexec_runtime.data.adjust applies them
PRICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "raw": ("prices as traded (split-adjusted), dividends not counted", ()),
    "total_return": ("dividends reinvested: OHLC scaled by adj_close / close", ("adjusted", "tr")),
}

# direction -> (meaning, accepted aliases)
DIRECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "long": ("long positions only", ("longonly", "long_only")),
    "short": ("short positions only (sold short, bought back; no margin model)", ("shortonly", "short_only")),
    "both": ("long and short positions, one at a time per symbol", ("long_short", "longshort")),
}

# Execution rules (stratexec_runtime.execution applies them): field -> {option: (no aliases,)}, default first.
RULE_CHOICES = {name: {option: ((),) for option in options} for name, options in EXECUTION_RULES.items()}

Problems = list[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one parameter is read: ``parse(raw, field, problems) -> value``.

    ``raw`` is None when the field is unset in the request; ``parse`` then
    returns the default (None lets ``_cross_checks`` derive it)."""

    parse: Callable[[Any, str, Problems], Any]
    accepted: str  # said in the docs and in error messages
    meaning: str = ""  # what the value is, with its unit (the CLI's help)


def _spec(default: Any, parse: Callable[[Any, str, Problems], Any], accepted: str, meaning: str = ""):
    return dataclasses.field(default=default, metadata={"spec": Spec(parse, accepted, meaning)})


def choice(default: str, table: dict[str, tuple]):
    """A closed set of strings (case-insensitive), with aliases."""
    names = ", ".join(table)

    def parse(raw, field, problems):
        value = (raw if raw is not None else default).strip().lower()
        for canonical, entry in table.items():
            if value == canonical or value in entry[-1]:
                return canonical
        problems.append((field, f"'{value}' is not supported; use one of {names}"))
        return value

    return _spec(default, parse, f"one of {names} (default {default})")


def number(default: float, low: float, high: float, *, low_open: bool = False, high_open: bool = True, meaning: str = ""):
    """A finite number in an interval."""
    interval = f"{'(' if low_open else '['}{low:g}, {'inf' if math.isinf(high) else f'{high:g}'}{')' if high_open else ']'}"

    def parse(raw, field, problems):
        value = float(default if raw is None else raw)
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (math.isfinite(value) and above and below):
            problems.append((field, f"must be in {interval}{': ' + meaning if meaning else ''}, got {value:g}"))
        return value

    return _spec(default, parse, f"{interval} (default {default:g})", meaning)


def date(default: str):
    def parse(raw, field, problems):
        value = (raw if raw is not None else default).strip()
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            problems.append((field, f"'{value}' is not a date of the form YYYY-MM-DD"))
            return value

    return _spec(default, parse, f"YYYY-MM-DD (default {default})")


def _symbol(raw: str, field: str, problems: Problems) -> str:
    sym = resolve_symbol(raw)
    if not SYMBOL_RE.match(sym):
        problems.append((field, f"'{raw.strip()}' is not a ticker symbol"))
    return sym


def symbols(default: tuple[str, ...]):
    def parse(raw, field, problems):
        if raw is not None and len(raw) > MAX_SYMBOLS:
            problems.append((field, f"at most {MAX_SYMBOLS} symbols, got {len(raw)}"))
            raw = raw[:MAX_SYMBOLS]
        items = [s for s in (raw or []) if s.strip()] or list(default)
        seen: dict[str, str] = {}
        for i, s in enumerate(items):
            sym = _symbol(s, f"{field}[{i}]", problems)
            if sym in seen:  # BTC and BTC-USD too: one symbol twice would take two slots of the portfolio
                problems.append((f"{field}[{i}]", f"{sym} is listed twice ('{seen[sym]}' and '{s.strip()}')"))
            seen.setdefault(sym, s.strip())
        return tuple(seen)

    return _spec(default, parse, f"up to {MAX_SYMBOLS} ticker symbols (default {', '.join(default)})")


PORTFOLIO_BENCHMARK = "portfolio"  # the traded symbols in equal parts, bought at the first close and held


def benchmark_symbols(symbols: tuple[str, ...] | list[str], benchmark: str) -> list[str]:
    """The symbols a benchmark is bought in."""
    return list(symbols) if benchmark == PORTFOLIO_BENCHMARK else [benchmark]


def benchmark_choice():
    def parse(raw, field, problems):
        if raw is None:
            return None
        if raw.strip().lower() == PORTFOLIO_BENCHMARK:
            return PORTFOLIO_BENCHMARK
        return _symbol(raw, field, problems)

    return _spec(None, parse, f"a ticker symbol, or {PORTFOLIO_BENCHMARK} (the traded symbols in equal parts; "
                              f"default: the traded symbol, or {PORTFOLIO_BENCHMARK} for several)")


@dataclasses.dataclass(frozen=True)
class Params:
    """Complete, checked backtest parameters (field names = proto field names).

    Build them with ``check``/``resolve`` (``resolve(None)`` gives the defaults),
    which also derive the fields whose default depends on others."""

    symbols: tuple[str, ...] = symbols(("BTC-USD",))
    benchmark: str | None = benchmark_choice()
    timeframe: str = choice("1d", TIMEFRAMES)
    start_date: str = date("2024-01-01")
    end_date: str = date("2024-12-31")
    initial_capital: float = number(10_000.0, 0, MAX_CAPITAL, low_open=True, high_open=False,
                                    meaning="the starting cash")
    fees: float = number(0.001, 0, 1, meaning="a fraction of the order value (0.001 = 0.1%)")
    slippage: float = number(0.0005, 0, 1, meaning="a fraction of the price (0.0005 = 0.05%)")
    position_sizing: str = choice("percent", SIZINGS)
    exposure: float = number(1.0, 0, 1, low_open=True, high_open=False,
                             meaning="the fraction position_sizing uses per entry: of the cash (percent), the equity (equity), the initial capital (fixed, equal)")
    risk_per_trade: float = number(0.01, 0, 1, low_open=True, high_open=False,
                                   meaning="with position_sizing risk: the fraction of equity lost if the stop is hit")
    fill_at: str = choice("close", RULE_CHOICES["fill_at"])
    stop_target_order: str = choice("stop_first", RULE_CHOICES["stop_target_order"])
    reentry: str = choice("skip", RULE_CHOICES["reentry"])
    prices: str = choice("raw", PRICES)
    direction: str = choice("long", DIRECTIONS)

    @property
    def freq(self) -> str:
        """vectorbt frequency of one bar."""
        return TIMEFRAMES[self.timeframe][0]

    @property
    def bar_words(self) -> str:
        return TIMEFRAMES[self.timeframe][1]

    def to_proto(self):
        """The resolved parameters as a BacktestParams with every field set."""
        from stratexec.backtest.v1 import backtest_pb2

        out = backtest_pb2.BacktestParams()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                getattr(out, f.name).extend(value)
            else:
                setattr(out, f.name, value)
        return out


def accepted_values() -> dict[str, str]:
    """Field -> what it accepts and its default (for docs and help)."""
    return {f.name: f.metadata["spec"].accepted for f in dataclasses.fields(Params)}


def descriptions() -> dict[str, str]:
    """Field -> what it is, what it accepts and its default, in one phrase (the CLI's help)."""
    specs = {f.name: f.metadata["spec"] for f in dataclasses.fields(Params)}
    return {name: f"{spec.meaning}: {spec.accepted}" if spec.meaning else spec.accepted for name, spec in specs.items()}


def _raw(params, name: str) -> Any:
    """The request's value of one field, or None when it is unset."""
    if params is None:
        return None
    field = params.DESCRIPTOR.fields_by_name[name]
    value = getattr(params, name)
    if field.is_repeated:
        return list(value) or None
    if field.has_presence:
        return value if params.HasField(name) else None
    if isinstance(value, str):
        return value if value.strip() else None
    return value or None  # enums and numbers without presence: 0 is unset


def _cross_checks(values: dict[str, Any], problems: Problems) -> None:
    if values["benchmark"] is None:  # a portfolio is compared with the same symbols bought and held
        symbols = values["symbols"]
        values["benchmark"] = PORTFOLIO_BENCHMARK if len(symbols) > 1 else (symbols[0] if symbols else "")
    bad_fields = {field for field, _ in problems}
    dates_ok = not bad_fields & {"params.start_date", "params.end_date"}
    if dates_ok and values["start_date"] > values["end_date"]:
        problems.append(("params.end_date", f"end_date {values['end_date']} is before start_date {values['start_date']}"))


def check(params) -> tuple[Params, Problems]:
    """Defaults applied and every field checked: (params, field violations)."""
    problems: Problems = []
    values = {
        f.name: f.metadata["spec"].parse(_raw(params, f.name), f"params.{f.name}", problems)
        for f in dataclasses.fields(Params)
    }
    _cross_checks(values, problems)
    return Params(**values), problems


def resolve(params) -> Params:
    """``check`` that raises INVALID_ARGUMENT (reason PARAMS_INVALID) on any violation."""
    resolved, problems = check(params)
    if problems:
        raise errors.invalid_argument("invalid backtest parameters", problems, reason="PARAMS_INVALID")
    return resolved
