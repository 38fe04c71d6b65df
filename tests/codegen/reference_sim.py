"""An independent reference backtest: a plain loop over bars with its own cash
accounting (no vectorbt, no stratexec_runtime). It states each execution rule
the way docs/strategy-schema.md does and is the oracle of the rule tests.

Signals are plain boolean lists the test computes with pandas; the loop keeps
cash and units, buys with `exposure` of the cash at fill * (1 + slippage) and
pays `fees` on the value, sells at fill * (1 - slippage) less `fees`.

A short position sells `units` at fill * (1 - slippage) less `fees` (the
proceeds go to cash: no margin model) and buys them back at
fill * (1 + slippage) plus `fees`; its units are sized like a purchase's, on
the short sale's price. The cash a new position may use is the cash less
twice the value of the open shorts at their sale price (their proceeds, and
the same again as collateral): a short ties up as much cash as a purchase. Its levels are the long ones turned over: the stop
loss above the entry and the trailing stop above the lowest low, reached on
the high; the target below the entry, reached on the low.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class RefTrade:
    symbol: str
    entry_bar: int
    exit_bar: int | None
    entry_fill: float  # before slippage
    exit_fill: float | None
    units: float
    reason: str
    cost: float = 0.0  # cash paid to buy (at entry for a long, at exit for a short), fees included
    proceeds: float = 0.0  # cash received from the sale (at exit for a long, at entry for a short), fees deducted
    side: str = "long"

    @property
    def pnl(self) -> float:
        return self.proceeds - self.cost


def _short_level_hits(pos, o, h, lo, target_first):
    """A short position's (price, reason) on this bar, or None: the lower of the stops (entry + distance,
    lowest low since the entry * (1 + trail)) is live and reached when the high gets to it; the target
    entry * (1 - target) when the low does; a bar opening beyond either fills at its open."""
    candidates = []
    if pos["sl"] is not None:
        candidates.append((pos["entry"] + pos["sl"], "sl"))
    if pos["trail"] is not None:
        candidates.append((pos["peak"] * (1 + pos["trail"]), "trail"))
    stop, why = min(candidates) if candidates else (None, None)
    tp = pos["tp"]
    if stop is not None and o >= stop:
        return o, why
    if tp is not None and o <= tp:
        return o, "tp"
    hit_stop = stop is not None and h >= stop
    hit_tp = tp is not None and lo <= tp
    if hit_stop and hit_tp:
        return (tp, "tp") if target_first else (stop, why)
    if hit_stop:
        return stop, why
    if hit_tp:
        return tp, "tp"
    return None


def _level_hits(pos, o, h, lo, target_first):
    """(price, reason) of a stop or target on this bar, or None."""
    if pos["side"] == "short":
        return _short_level_hits(pos, o, h, lo, target_first)
    stop, why = None, None
    if pos["sl"] is not None:
        stop, why = pos["entry"] - pos["sl"], "sl"
    if pos["trail"] is not None:
        trail = pos["peak"] * (1 - pos["trail"])
        if stop is None or trail > stop:
            stop, why = trail, "trail"
    tp = pos["tp"]
    gapped_stop = stop is not None and o <= stop
    gapped_tp = tp is not None and o >= tp
    if gapped_stop:
        return o, why
    if gapped_tp:
        return o, "tp"
    hit_stop = stop is not None and lo <= stop
    hit_tp = tp is not None and h >= tp
    if hit_stop and hit_tp:
        return (tp, "tp") if target_first else (stop, why)
    if hit_stop:
        return stop, why
    if hit_tp:
        return tp, "tp"
    return None


def simulate(bars: dict, entries: dict, exits: dict, *, capital=10_000.0, fees=0.001, slippage=0.0005, exposure=1.0,
             tp=None, sl=None, trail=None, max_bars=None, fill_at="close", order="stop_first", reentry="skip",
             exit_name="exit", sizing="percent", short_entries=None, short_exits=None, short_exit_name="cover", risk=0.01):
    """bars: symbol -> DataFrame (open, high, low, close) on one shared index; entries/exits: symbol -> list of bool;
    short_entries/short_exits: the same for short positions (none when omitted). One position per symbol at a
    time; a long and a short entry signal on one bar open nothing (skipped, "both_sides").

    Returns (trades, final equity, skipped [(symbol, bar, reason)]). Symbols are processed in the given
    order on each bar, exits before entries (sells free cash first).
    """
    symbols = list(bars)
    n = len(next(iter(bars.values())))
    no_signals = {s: [False] * n for s in symbols}
    wants = {"long": (entries, exits, exit_name), "short": (short_entries or no_signals, short_exits or no_signals, short_exit_name)}
    cols = {s: {k: bars[s][k].tolist() for k in ("open", "high", "low", "close")} for s in symbols}
    cash = capital
    state = {s: {"pos": None, "trade": None, "pending_in": None, "pending_out": None, "carry": None, "exit_bar": -1}
             for s in symbols}
    trades: list[RefTrade] = []
    skipped = []

    def sell(s, bar, fill, reason):
        nonlocal cash
        st = state[s]
        t = st["trade"]
        t.exit_bar, t.exit_fill, t.reason = bar, fill, reason
        if t.side == "long":
            t.proceeds = t.units * fill * (1 - slippage) * (1 - fees)
            cash += t.proceeds
        else:  # buy back
            t.cost = t.units * fill * (1 + slippage) * (1 + fees)
            cash -= t.cost
        st["pos"], st["trade"], st["exit_bar"] = None, None, bar

    def buy(s, bar, fill, signal_bar, side="long"):
        """Open a position: buy for a long one, sell short for a short one."""
        nonlocal cash
        st = state[s]
        paid = fill * (1 + slippage) if side == "long" else fill * (1 - slippage)
        free = cash - 2 * sum(t.units * t.entry_fill * (1 - slippage) for t in trades if t.side == "short" and t.exit_bar is None)
        affordable = free / (paid * (1 + fees))
        if sizing == "percent":  # this fraction of the free cash, fees included
            units = free * exposure / (paid * (1 + fees))
        elif sizing == "equal":  # capital / N in value at the fill price, slippage and fees on top, less when cash runs short
            units = min(exposure * capital / len(symbols) / fill, affordable)
        elif sizing == "fixed":  # exposure x capital in value at the fill price
            units = min(exposure * capital / fill, affordable)
        else:  # a fraction of the equity at the bar's start: exposure, or risk / the stop's distance (at most all of it)
            weight = exposure if sizing == "equity" else min(1.0, risk / min(d for d in (sl, trail) if d is not None))
            units = min(weight * bar_value(bar) / fill, affordable)
        if units * paid <= 1e-9:
            skipped.append((s, signal_bar, "no_cash"))
            return
        t = RefTrade(s, bar, None, fill, None, units, "end_of_data", side=side)
        if side == "long":
            t.cost = units * paid * (1 + fees)
            cash -= t.cost
        else:
            t.proceeds = units * paid * (1 - fees)
            cash += t.proceeds
        trades.append(t)
        st["trade"] = t
        sign = 1 if side == "long" else -1
        st["pos"] = {"bar": bar, "side": side, "entry": fill, "peak": fill,
                     "tp": None if tp is None else fill * (1 + sign * tp), "sl": None if sl is None else sl * fill, "trail": trail}

    start = {}  # the bar's start: cash and the open trades (the equity "equity" and "risk" sizing read)

    def bar_value(bar):
        """Cash plus the open positions at the bar's start, each valued at its fill on this bar if it exits here,
        else at the close."""
        cash0, held = start[bar]
        c = {t.symbol: cols[t.symbol]["close"][bar] for t in held}
        return cash0 + sum((1 if t.side == "long" else -1) * t.units * (t.exit_fill if t.exit_bar == bar else c[t.symbol])
                           for t in held)

    for i in range(n):
        start[i] = (cash, [t for t in trades if t.exit_bar is None])
        for s in symbols:  # every sell of the bar comes before any buy (cash is freed first)
            st, c = state[s], cols[s]
            if st["pending_out"] is not None and st["pending_out"][0] == i:
                if st["pos"] is not None:
                    sell(s, i, c["open"][i], st["pending_out"][1])
                st["pending_out"] = None
            pos = st["pos"]
            if pos is not None and i > pos["bar"]:
                hit = _level_hits(pos, c["open"][i], c["high"][i], c["low"][i], order == "target_first")
                if hit:
                    sell(s, i, *hit)
                elif pos["side"] == "long":
                    pos["peak"] = max(pos["peak"], c["high"][i])
                else:
                    pos["peak"] = min(pos["peak"], c["low"][i])
            opening = st["pending_in"] is not None and st["pending_in"][0] == i  # bought at this bar's open
            held = st["pos"]["side"] if st["pos"] is not None else st["pending_in"][2] if opening else None
            if held and wants[held][1][s][i] and st["pending_out"] is None:
                if fill_at == "close":
                    sell(s, i, c["close"][i], wants[held][2])
                elif i + 1 < n:
                    st["pending_out"] = (i + 1, wants[held][2])
            if st["pos"] is not None and max_bars is not None and st["pending_out"] is None and i - st["pos"]["bar"] >= max_bars:
                sell(s, i, c["close"][i], "time_exit")
        for s in symbols:
            st, c = state[s], cols[s]
            if st["pending_in"] is not None and st["pending_in"][0] == i:
                buy(s, i, c["open"][i], st["pending_in"][1], st["pending_in"][2])
                st["pending_in"] = None
        for s in symbols:  # entry signals at this bar's close
            st, c = state[s], cols[s]
            signalled = [side for side in ("long", "short") if wants[side][0][s][i]]
            if not signalled and st["carry"]:
                signalled = [st["carry"]]
            carried, st["carry"] = st["carry"], None
            if not signalled:
                continue
            flat = st["pos"] is None and st["pending_in"] is None and st["pending_out"] is None
            if len(signalled) == 2:
                if flat:
                    skipped.append((s, i, "both_sides"))
                continue
            side = signalled[0]
            fill_bar = i if fill_at == "close" else i + 1
            if st["exit_bar"] == fill_bar or (st["pending_out"] is not None and st["pending_out"][0] == fill_bar):
                if reentry == "next_bar" and not carried:
                    st["carry"] = side
                else:
                    skipped.append((s, i, "exit_bar"))
                continue
            if not flat:
                continue
            if fill_bar >= n:
                skipped.append((s, i, "end_of_data"))
            elif fill_at == "close":
                buy(s, i, c["close"][i], i, side)
            else:
                st["pending_in"] = (fill_bar, i, side)
    equity = cash + sum((1 if t.side == "long" else -1) * t.units * cols[t.symbol]["close"][-1]
                        for t in trades if t.exit_bar is None)
    return trades, equity, skipped
