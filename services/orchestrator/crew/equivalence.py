"""Is a proposed script equivalent to the compiled one? Compared by what
both scripts produced when the sandbox ran them on the same data.

Why results, not source or signals: the orchestrator never runs untrusted
code itself, and the sandbox returns a script's ``BacktestResult``, not its
signal frame. The comparison is at least as strict as comparing signals:
under the same portfolio settings, the same entry and exit signals give the
same trades, and a proposal whose signals differ on any bar that matters
changes a trade's entry or exit (a signal that changes no fill changes no
result, so it cannot matter for this execution). It also catches what a
signal comparison would miss: a proposal that keeps the signals but
changes costs (fees, slippage), sizing, stops, the fill price, the
benchmark or the data it reads shows up in the prices, sizes and PnL of the
trades, in the equity curve or in the metrics.

The check holds for the data of this execution, which is the data the
chosen script then runs on; it says nothing about other data.

Exact where a value is discrete (symbols, directions, bar times, trade
status, counts), within a tight relative tolerance where it is a float,
so that an equivalent rewrite whose arithmetic differs in the last bits
(``rolling(20).sum() / 20`` for ``rolling(20).mean()``) still passes.
"""
from __future__ import annotations

import math
from typing import Sequence

from stratexec.backtest.v1 import backtest_pb2

REL_TOL = 1e-9  # relative: 10 µ-units of currency on an equity of 10,000
ABS_TOL = 1e-9  # for values at or near zero (a flat trade's PnL)

_TRADE_EXACT = ("symbol", "direction", "entry_time", "exit_time", "status")
_TRADE_CLOSE = ("entry_price", "exit_price", "size", "pnl", "return_pct")
_DATA_FIELDS = ("provider", "symbol", "first_time", "last_time", "bars", "sha256")


def _close(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return repr(value) if isinstance(value, str) else str(value)


def _trade_key(t: backtest_pb2.Trade) -> tuple:
    return t.symbol, t.entry_time, t.exit_time, t.status


def _trade_value(t: backtest_pb2.Trade, field: str):
    if field == "status":
        return backtest_pb2.TradeStatus.Name(t.status).removeprefix("TRADE_STATUS_").lower()
    return getattr(t, field)


def _trade_words(t: backtest_pb2.Trade) -> str:
    exit_words = f"exited {t.exit_time}" if t.exit_time else "still open"
    return f"{t.symbol} entered {t.entry_time}, {exit_words}"


def _trades_difference(ref: Sequence[backtest_pb2.Trade], new: Sequence[backtest_pb2.Trade],
                       rel_tol: float, abs_tol: float) -> str | None:
    ref, new = sorted(ref, key=_trade_key), sorted(new, key=_trade_key)
    count = "" if len(ref) == len(new) else f"{len(new)} trades, the compiled script's {len(ref)}; "
    for i, (a, b) in enumerate(zip(ref, new)):
        for field in _TRADE_EXACT:
            if _trade_value(a, field) != _trade_value(b, field):
                return (f"{count}trade {i + 1}: {field.replace('_', ' ')} {_show(_trade_value(b, field))}, "
                        f"the compiled script's {_show(_trade_value(a, field))} ({_trade_words(a)})")
        for field in _TRADE_CLOSE:
            if not _close(getattr(a, field), getattr(b, field), rel_tol, abs_tol):
                return (f"{count}trade {i + 1} ({_trade_words(a)}): {field.replace('_', ' ')} "
                        f"{_show(getattr(b, field))}, the compiled script's {_show(getattr(a, field))}")
    if len(new) > len(ref):
        return f"{count}an extra trade: {_trade_words(new[len(ref)])}"
    if len(ref) > len(new):
        return f"{count}a missing trade: {_trade_words(ref[len(new)])}"
    return None


def _curve_difference(name: str, ref: Sequence[backtest_pb2.EquityPoint], new: Sequence[backtest_pb2.EquityPoint],
                      rel_tol: float, abs_tol: float) -> str | None:
    for a, b in zip(ref, new):
        if a.time != b.time:
            return f"{name} has a bar at {b.time} where the compiled script's has {a.time}"
        if not _close(a.value, b.value, rel_tol, abs_tol):
            return f"{name} at {a.time} is {b.value:.6f}, the compiled script's {a.value:.6f}"
    if len(ref) != len(new):
        return f"{name} has {len(new)} bars, the compiled script's {len(ref)}"
    return None


def _metrics_difference(ref: backtest_pb2.Metrics, new: backtest_pb2.Metrics,
                        rel_tol: float, abs_tol: float) -> str | None:
    for field in backtest_pb2.Metrics.DESCRIPTOR.fields:
        name = field.name
        if field.has_presence and ref.HasField(name) != new.HasField(name):
            return f"metric {name} is {'set' if new.HasField(name) else 'unset'}, the compiled script's is not"
        a, b = getattr(ref, name), getattr(new, name)
        same = _close(a, b, rel_tol, abs_tol) if isinstance(a, float) else a == b
        if not same:
            return f"metric {name} is {_show(b)}, the compiled script's {_show(a)}"
    return None


def _data_difference(ref: Sequence[backtest_pb2.DataSource], new: Sequence[backtest_pb2.DataSource]) -> str | None:
    def rows(sources):
        return sorted(tuple(getattr(s, f) for f in _DATA_FIELDS) for s in sources)

    if rows(ref) != rows(new):
        return (f"it read other data ({', '.join(f'{s.symbol} {s.bars} bars' for s in new) or 'none'}), "
                f"the compiled script {', '.join(f'{s.symbol} {s.bars} bars' for s in ref) or 'none'}")
    return None


def first_difference(compiled: backtest_pb2.BacktestResult, proposed: backtest_pb2.BacktestResult, *,
                     rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> str | None:
    """The first way ``proposed`` differs from ``compiled``, in words; None when they are equivalent:
    the same data, identical trades, and equity, benchmark and metrics equal within the tolerance."""
    return (_data_difference(compiled.data, proposed.data)
            or _trades_difference(compiled.trades, proposed.trades, rel_tol, abs_tol)
            or _curve_difference("equity", compiled.equity, proposed.equity, rel_tol, abs_tol)
            or _curve_difference("benchmark equity", compiled.benchmark_equity, proposed.benchmark_equity,
                                 rel_tol, abs_tol)
            or _metrics_difference(compiled.metrics, proposed.metrics, rel_tol, abs_tol))
