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


def _at_signal(value, column: str, sig: pd.DataFrame, bar: int) -> float | None:
    """A stop's width, fixed at the signal bar: the given fraction, or the signal's ATR column."""
    if value is None:
        return None
    return float(sig[column].iloc[bar]) if value == "atr" else float(value)


def plan_trades(ohlc: pd.DataFrame, sig: pd.DataFrame, rules: dict, no_cash: frozenset[int] = frozenset()) -> Plan:
    """Decide every fill of one symbol's long trades (``sig``: entries, exits, exit_node per bar).

    ``no_cash``: signal bars whose entry the portfolio could not pay for (see ``unfilled``):
    they are skipped with that reason and the symbol stays flat.
    """
    o, h, lo, c = (ohlc[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    n = len(c)
    want_in = sig["entries"].to_numpy(bool)
    want_out = sig["exits"].to_numpy(bool)
    exit_node = sig["exit_node"].to_numpy(object) if "exit_node" in sig else np.full(n, "exit")
    next_open = rules.get("fill_at", "close") == "next_open"
    target_first = rules.get("stop_target_order", "stop_first") == "target_first"
    carry_over = rules.get("reentry", "skip") == "next_bar"
    max_bars = rules.get("max_bars")

    entries, exits = np.zeros(n, bool), np.zeros(n, bool)
    price = c.copy()
    reasons: dict[int, str] = {}
    skipped: list[tuple[int, str]] = []
    signal_bar: dict[int, int] = {}
    pos = None  # the open position: fill bar, entry price, peak, stop distances, target level
    pending_entry = pending_exit = None  # (bar, reason) of a next_open fill decided on the bar before
    carried = False
    last_exit = -1

    def close_at(bar: int, fill: float, reason: str) -> None:
        nonlocal pos, last_exit
        exits[bar], price[bar], reasons[bar] = True, fill, reason
        pos, last_exit = None, bar

    for i in range(n):
        if pending_entry is not None and pending_entry[0] == i:
            pos = _open(i, o[i], pending_entry[1], sig, rules)
            entries[i], price[i], pending_entry = True, o[i], None
        if pos is not None and pending_exit is not None and pending_exit[0] == i:
            close_at(i, o[i], pending_exit[1])
            pending_exit = None
        if pos is not None and i > pos["bar"]:
            hit = _stop_or_target(pos, o[i], h[i], lo[i], target_first)
            if hit is not None:
                close_at(i, *hit)
            else:
                pos["peak"] = max(pos["peak"], h[i])  # a completed bar's high raises the trailing stop
        if pos is not None and want_out[i] and pending_exit is None:
            if not next_open:
                close_at(i, c[i], str(exit_node[i]))
            elif i + 1 < n:
                pending_exit = (i + 1, str(exit_node[i]))
        if pos is not None and max_bars is not None and pending_exit is None and i - pos["bar"] >= max_bars:
            close_at(i, c[i], "time_exit")

        signal = bool(want_in[i]) or carried
        was_carried, carried = carried, False
        if not signal:
            continue
        order_bar = i + 1 if next_open else i
        busy = last_exit == order_bar or (pending_exit is not None and pending_exit[0] == order_bar)
        if busy:
            if carry_over and not was_carried:
                carried = True
            else:
                skipped.append((i, "exit_bar"))
        elif pos is None and pending_entry is None and pending_exit is None:
            if order_bar >= n:
                skipped.append((i, END_OF_DATA))
            elif i in no_cash:
                skipped.append((i, "no_cash"))
            elif next_open:
                pending_entry = (order_bar, i)
                signal_bar[order_bar] = i
            else:
                signal_bar[i] = i
                pos = _open(i, c[i], i, sig, rules)
                entries[i], price[i] = True, c[i]
    return Plan(entries, exits, price, reasons, skipped, signal_bar)


def _open(bar: int, entry_price: float, signal_bar: int, sig: pd.DataFrame, rules: dict) -> dict:
    # The stop loss sits a distance below the entry price (a fraction of it, or k x ATR in price units);
    # the trailing stop a fraction below the peak (k x ATR / close of the signal bar for an ATR trail).
    sl = rules.get("stop_loss")
    sl = None if sl is None else (float(sig["sl_distance"].iloc[signal_bar]) if sl == "atr" else float(sl) * entry_price)
    trail = _at_signal(rules.get("trailing_stop"), "trail_distance", sig, signal_bar)
    tp = rules.get("take_profit")
    return {
        "bar": bar, "entry": entry_price, "peak": entry_price,
        "sl": sl, "trail": trail, "tp": None if tp is None else entry_price * (1 + float(tp)),
    }


def _stop_or_target(pos: dict, o: float, h: float, lo: float, target_first: bool) -> tuple[float, str] | None:
    """(fill price, reason) when this bar reaches the effective stop or the target, else None."""
    levels = []
    if pos["sl"] is not None:
        levels.append((pos["entry"] - pos["sl"], "sl"))
    if pos["trail"] is not None:
        levels.append((pos["peak"] * (1 - pos["trail"]), "trail"))
    stop = max(levels, key=lambda lv: lv[0]) if levels else None  # the higher level is the effective stop
    tp = pos["tp"]
    if stop is not None and o <= stop[0]:
        return o, stop[1]  # opened below the stop: filled at the open
    if tp is not None and o >= tp:
        return o, "tp"  # opened above the target: filled at the open
    stop_hit = stop is not None and lo <= stop[0]
    tp_hit = tp is not None and h >= tp
    if stop_hit and tp_hit:
        return (tp, "tp") if target_first else stop
    if stop_hit:
        return stop
    if tp_hit:
        return tp, "tp"
    return None


def order_arrays(plans: dict[str, Plan], index: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """entries, exits and fill prices as frames with one column per symbol."""
    frame = {name: pd.DataFrame({s: getattr(p, name) for s, p in plans.items()}, index=index)
             for name in ("entries", "exits", "price")}
    return frame["entries"], frame["exits"], frame["price"]


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
