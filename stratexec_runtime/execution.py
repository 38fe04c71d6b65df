"""Execution rules of a generated script: the bar and price of every fill, and why.

vectorbt's ``from_signals`` keeps one stop per position, checks a stop before
a target, and takes one order per bar and column. The rules a strategy may ask
for are wider (a fixed and a trailing stop together, the target first, fills
at the next open, re-entry), so a script decides every fill in the plain loop
below and vectorbt does the accounting: one order per decided fill, at the
decided price, with the fees, slippage, sizing and cash of the backtest.

Rules (``rules`` dict; the defaults are the first option):
  fill_at     "close": a signal fills at its bar's close; "next_open": at the next bar's open
  stop_target_order  "stop_first" / "target_first": which exit wins when a bar reaches both
              levels without opening past either (a bar opening past a level exits there first)
  reentry     "skip": an entry signal whose fill would fall on the bar of an exit is dropped;
              "next_bar": it is carried to the next bar and fills there
  take_profit, stop_loss, trailing_stop: fractions of the entry price (of the peak for the
              trailing stop), "atr" (the signal bar's ``sl_distance`` in price units /
              ``trail_distance`` as a fraction), or None
  max_bars    time exit: close at the close of bar entry + max_bars (None: no time exit)
Sides: ``sig`` holds the long signals (entries, exits, exit_node) and, for a strategy that sells
short, the short ones (short_entries, short_exits, short_exit_node). A short position's stops are
mirrored: the stop loss sits above the entry price and is checked on the high, the trailing stop
trails the lowest price since the entry, the target sits below the entry and is checked on the low.
One position per symbol at a time: an entry signal of either side while a position is open is
ignored, and a reversal (a long exit and a short entry on one bar) follows the reentry rule, since
a bar takes one order. Both sides signalling an entry on one bar is no entry (reason both_sides).
Exit reasons: "tp", "sl", "trail", "time_exit", the id of the exit node whose rule fired,
or "end_of_data" for a trade still open at the last bar.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

OPTIONS = {
    "fill_at": ("close", "next_open"),
    "stop_target_order": ("stop_first", "target_first"),
    "reentry": ("skip", "next_bar"),
}
END_OF_DATA = "end_of_data"  # exit reason of a trade still open at the last bar


@dataclasses.dataclass
class Plan:
    """The fills of one symbol: order bars, their prices and the reason of each exit."""

    entries: np.ndarray  # bool per bar: an entry order fills on this bar
    exits: np.ndarray  # bool per bar: an exit order fills on this bar
    price: np.ndarray  # fill price per bar (the close where no order fills)
    reasons: dict[int, str]  # exit bar -> tp | sl | trail | time_exit | an exit node id
    skipped: list[tuple[int, str]]  # (signal bar, reason) of entry signals that never filled
    signal_bar: dict[int, int]  # entry bar -> the bar of its signal
    short: np.ndarray | None = None  # bool per bar: the order on this bar opens or closes a short position
    stop_fraction: dict[int, float | None] = dataclasses.field(default_factory=dict)  # entry bar -> initial stop distance / entry price
    stop_level: np.ndarray | None = None  # float per bar: the effective stop checked on this bar (NaN: none)
    target_level: np.ndarray | None = None  # float per bar: the take-profit level checked on this bar (NaN: none)
    lines: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # indicator label -> its value per bar

    def __post_init__(self):
        if self.short is None:
            self.short = np.zeros(len(self.entries), bool)

    @property
    def long_entries(self) -> np.ndarray:
        return self.entries & ~self.short

    @property
    def long_exits(self) -> np.ndarray:
        return self.exits & ~self.short

    @property
    def short_entries(self) -> np.ndarray:
        return self.entries & self.short

    @property
    def short_exits(self) -> np.ndarray:
        return self.exits & self.short


def _at_signal(value, column: str, sig: pd.DataFrame, bar: int) -> float | None:
    """A stop's width, fixed at the signal bar: the given fraction, or the signal's ATR column."""
    if value is None:
        return None
    return float(sig[column].iloc[bar]) if value == "atr" else float(value)


def _column(sig: pd.DataFrame, name: str, n: int, default, dtype) -> np.ndarray:
    return sig[name].to_numpy(dtype) if name in sig else np.full(n, default, dtype)


LINE_PREFIX = "line:"  # a signals column "line:<label>" holds an indicator a rule reads, for the report's chart


def plan_trades(ohlc: pd.DataFrame, sig: pd.DataFrame, rules: dict, no_cash: frozenset[int] = frozenset()) -> Plan:
    """Decide every fill of one symbol's trades (``sig``: the signals of each side per bar, see Sides).

    ``no_cash``: signal bars whose entry the portfolio could not pay for (see ``unfilled``):
    they are skipped with that reason and the symbol stays flat.
    """
    o, h, lo, c = (ohlc[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    n = len(c)
    want_in = {"long": _column(sig, "entries", n, False, bool), "short": _column(sig, "short_entries", n, False, bool)}
    want_out = {"long": _column(sig, "exits", n, False, bool), "short": _column(sig, "short_exits", n, False, bool)}
    exit_node = {"long": _column(sig, "exit_node", n, "exit", object), "short": _column(sig, "short_exit_node", n, "exit", object)}
    next_open = rules.get("fill_at", "close") == "next_open"
    target_first = rules.get("stop_target_order", "stop_first") == "target_first"
    carry_over = rules.get("reentry", "skip") == "next_bar"
    max_bars = rules.get("max_bars")

    entries, exits, short = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    price = c.copy()
    reasons: dict[int, str] = {}
    skipped: list[tuple[int, str]] = []
    signal_bar: dict[int, int] = {}
    stop_fraction: dict[int, float | None] = {}
    stop_level, target_level = np.full(n, np.nan), np.full(n, np.nan)
    pos = None  # the open position: fill bar, side, entry price, peak, stop distances, target level
    pending_entry = pending_exit = None  # next_open fills decided on the bar before: (bar, signal bar, side), (bar, reason)
    carried = None  # the side of an entry signal carried to this bar (reentry next_bar)
    last_exit = -1

    def close_at(bar: int, fill: float, reason: str) -> None:
        nonlocal pos, last_exit
        exits[bar], price[bar], reasons[bar], short[bar] = True, fill, reason, pos["side"] == "short"
        pos, last_exit = None, bar

    def open_at(bar: int, fill: float, signal: int, side: str) -> None:
        nonlocal pos
        pos = _open(bar, fill, signal, side, sig, rules)
        entries[bar], price[bar], short[bar] = True, fill, side == "short"
        distances = ([pos["sl"] / fill] if pos["sl"] is not None else []) + ([pos["trail"]] if pos["trail"] is not None else [])
        stop_fraction[bar] = min(distances) if distances else None  # the live (tighter) stop at the entry

    for i in range(n):
        if pending_entry is not None and pending_entry[0] == i:
            open_at(i, o[i], pending_entry[1], pending_entry[2])
            pending_entry = None
        if pos is not None and pending_exit is not None and pending_exit[0] == i:
            close_at(i, o[i], pending_exit[1])
            pending_exit = None
        if pos is not None and i > pos["bar"]:
            stop = _stop(pos)
            stop_level[i] = np.nan if stop is None else stop[0]
            target_level[i] = np.nan if pos["tp"] is None else pos["tp"]
            hit = _stop_or_target(pos, o[i], h[i], lo[i], target_first)
            if hit is not None:
                close_at(i, *hit)
            elif pos["side"] == "long":
                pos["peak"] = max(pos["peak"], h[i])  # a completed bar's high raises the trailing stop
            else:
                pos["peak"] = min(pos["peak"], lo[i])  # a short's trailing stop follows the lowest low
        if pos is not None and want_out[pos["side"]][i] and pending_exit is None:
            if not next_open:
                close_at(i, c[i], str(exit_node[pos["side"]][i]))
            elif i + 1 < n:
                pending_exit = (i + 1, str(exit_node[pos["side"]][i]))
        if pos is not None and max_bars is not None and pending_exit is None and i - pos["bar"] >= max_bars:
            close_at(i, c[i], "time_exit")

        sides = [side for side in ("long", "short") if want_in[side][i]] or ([carried] if carried else [])
        was_carried, carried = carried is not None, None
        if not sides:
            continue
        if len(sides) == 2:  # a long and a short entry on one bar: neither (counted when flat)
            if pos is None and pending_entry is None and pending_exit is None:
                skipped.append((i, "both_sides"))
            continue
        side = sides[0]
        order_bar = i + 1 if next_open else i
        busy = last_exit == order_bar or (pending_exit is not None and pending_exit[0] == order_bar)
        if busy:
            if carry_over and not was_carried:
                carried = side
            else:
                skipped.append((i, "exit_bar"))
        elif pos is None and pending_entry is None and pending_exit is None:
            if order_bar >= n:
                skipped.append((i, END_OF_DATA))
            elif i in no_cash:
                skipped.append((i, "no_cash"))
            elif next_open:
                pending_entry = (order_bar, i, side)
                signal_bar[order_bar] = i
            else:
                signal_bar[i] = i
                open_at(i, c[i], i, side)
    lines = {str(col)[len(LINE_PREFIX):]: sig[col].to_numpy(float) for col in sig.columns if str(col).startswith(LINE_PREFIX)}
    return Plan(entries, exits, price, reasons, skipped, signal_bar, short, stop_fraction, stop_level, target_level, lines)


def _open(bar: int, entry_price: float, signal_bar: int, side: str, sig: pd.DataFrame, rules: dict) -> dict:
    # The stop loss sits a distance from the entry price (a fraction of it, or k x ATR in price units);
    # the trailing stop a fraction from the peak (k x ATR / close of the signal bar for an ATR trail).
    # Below the entry for a long position, above it for a short one; the target on the other side.
    sl = rules.get("stop_loss")
    sl = None if sl is None else (float(sig["sl_distance"].iloc[signal_bar]) if sl == "atr" else float(sl) * entry_price)
    trail = _at_signal(rules.get("trailing_stop"), "trail_distance", sig, signal_bar)
    tp = rules.get("take_profit")
    sign = 1 if side == "long" else -1
    return {
        "bar": bar, "side": side, "entry": entry_price, "peak": entry_price,  # peak: the lowest low for a short
        "sl": sl, "trail": trail, "tp": None if tp is None else entry_price * (1 + sign * float(tp)),
    }


def _stop(pos: dict) -> tuple[float, str] | None:
    """(level, reason) of the effective stop: of the stop loss and the trailing stop, the tighter
    (higher for a long position, lower for a short one); None without stops."""
    long = pos["side"] == "long"
    sign = 1 if long else -1
    levels = []
    if pos["sl"] is not None:
        levels.append((pos["entry"] - sign * pos["sl"], "sl"))
    if pos["trail"] is not None:
        levels.append((pos["peak"] * (1 - sign * pos["trail"]), "trail"))
    return (max if long else min)(levels, key=lambda lv: lv[0]) if levels else None


def _stop_or_target(pos: dict, o: float, h: float, lo: float, target_first: bool) -> tuple[float, str] | None:
    """(fill price, reason) when this bar reaches the effective stop or the target, else None.

    Long: stops below (the higher level is the effective one), checked on the low; the target above,
    on the high. Short, mirrored: stops above (the lower level wins), checked on the high; the target
    below, on the low."""
    long = pos["side"] == "long"
    stop = _stop(pos)
    tp = pos["tp"]

    def past(price: float, level: float) -> bool:  # at or beyond a stop level, against the position
        return price <= level if long else price >= level

    def beyond(price: float, level: float) -> bool:  # at or beyond the target, in the position's favour
        return price >= level if long else price <= level

    adverse, favourable = (lo, h) if long else (h, lo)
    if stop is not None and past(o, stop[0]):
        return o, stop[1]  # opened past the stop: filled at the open
    if tp is not None and beyond(o, tp):
        return o, "tp"  # opened past the target: filled at the open
    stop_hit = stop is not None and past(adverse, stop[0])
    tp_hit = tp is not None and beyond(favourable, tp)
    if stop_hit and tp_hit:
        return (tp, "tp") if target_first else stop
    if stop_hit:
        return stop
    if tp_hit:
        return tp, "tp"
    return None


def order_arrays(plans: dict[str, Plan], index: pd.Index, *names: str) -> tuple:
    """Frames with one column per symbol of the plans' arrays ``names`` (default: entries, exits,
    price; any of long_entries, long_exits, short_entries, short_exits too), and for the name
    "call_seq" the call sequence of ``exits_first``."""
    return tuple(exits_first(plans) if name == "call_seq" else
                 pd.DataFrame({s: getattr(p, name) for s, p in plans.items()}, index=index)
                 for name in (names or ("entries", "exits", "price")))


def target_percents(plans: dict[str, Plan], index: pd.Index, params: dict) -> pd.DataFrame:
    """vectorbt ``targetpercent`` sizes, one column per symbol: at each entry the signed fraction of
    the equity the position takes (negative for a short), 0 at each exit (close it), NaN elsewhere.

    ``position_sizing`` "equity": ``exposure``; "risk": ``risk_per_trade`` / the entry's initial
    stop distance as a fraction of its price (the units that lose ``risk_per_trade`` of the equity
    at the stop), at most 1 (no leverage)."""
    out = {}
    for symbol, plan in plans.items():
        size = np.full(len(plan.entries), np.nan)
        size[plan.exits] = 0.0
        for bar in np.flatnonzero(plan.entries):
            if params["position_sizing"] == "risk":
                weight = min(1.0, params["risk_per_trade"] / plan.stop_fraction[int(bar)])
            else:
                weight = params["exposure"]
            size[bar] = -weight if plan.short[bar] else weight
        out[symbol] = size
    return pd.DataFrame(out, index=index)


def exits_first(plans: dict[str, Plan]) -> np.ndarray:
    """vectorbt's call sequence (bars x symbols): on each bar every exit, then every entry, each in the
    symbols' order. With shorts an exit may be a buy and an entry a sale, so "sales first" (call_seq
    "auto") would let a short sale use cash a buy-back frees later on the bar."""
    exits = np.column_stack([p.exits for p in plans.values()])
    entries = np.column_stack([p.entries for p in plans.values()])
    rank = np.where(exits, 0, np.where(entries, 1, 2))  # exits, entries, then the columns without an order
    return np.argsort(rank, axis=1, kind="stable").astype(np.int64)


def unfilled(pf, plans: dict[str, Plan]) -> tuple[str, int] | None:
    """(symbol, signal bar) of the earliest planned entry the portfolio did not fill (no cash), or None.

    Everything before it is as planned, so a script re-plans that symbol with the signal skipped
    and simulates again; it stops after at most one pass per unaffordable signal.
    """
    records = pf.trades.records_arr
    earliest = None
    for col, (symbol, plan) in enumerate(plans.items()):  # plans are in the portfolio's column order
        filled = set(records["entry_idx"][records["col"] == col].tolist())
        missing = [int(bar) for bar in np.flatnonzero(plan.entries) if int(bar) not in filled]
        if missing and (earliest is None or missing[0] < earliest[0]):
            earliest = (missing[0], symbol, plan.signal_bar[missing[0]])
    return None if earliest is None else (earliest[1], earliest[2])
