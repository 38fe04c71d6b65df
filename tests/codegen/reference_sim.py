"""An independent reference backtest: a plain loop over bars with its own cash
accounting (no vectorbt, no stratexec_runtime). It states each execution rule
the way docs/strategy-schema.md does and is the oracle of the rule tests.

Signals are plain boolean lists the test computes with pandas; the loop keeps
cash and units, buys with `exposure` of the cash at fill * (1 + slippage) and
pays `fees` on the value, sells at fill * (1 - slippage) less `fees`.
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
    cost: float = 0.0  # cash paid at entry, fees included
    proceeds: float = 0.0  # cash received at exit, fees deducted

    @property
    def pnl(self) -> float:
        return self.proceeds - self.cost


def _level_hits(pos, o, h, lo, target_first):
    """(price, reason) of a stop or target on this bar, or None."""
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
             exit_name="exit", sizing="percent"):
    """bars: symbol -> DataFrame (open, high, low, close) on one shared index; entries/exits: symbol -> list of bool.

    Returns (trades, final equity, skipped [(symbol, bar, reason)]). Symbols are processed in the given
    order on each bar, exits before entries (sells free cash first).
    """
    symbols = list(bars)
    n = len(next(iter(bars.values())))
    cols = {s: {k: bars[s][k].tolist() for k in ("open", "high", "low", "close")} for s in symbols}
    cash = capital
    state = {s: {"pos": None, "trade": None, "pending_in": None, "pending_out": None, "carry": False, "exit_bar": -1}
             for s in symbols}
    trades: list[RefTrade] = []
    skipped = []

    def sell(s, bar, fill, reason):
        nonlocal cash
        st = state[s]
        t = st["trade"]
        t.exit_bar, t.exit_fill, t.reason = bar, fill, reason
        t.proceeds = t.units * fill * (1 - slippage) * (1 - fees)
        cash += t.proceeds
        st["pos"], st["trade"], st["exit_bar"] = None, None, bar

    def buy(s, bar, fill, signal_bar):
        nonlocal cash
        st = state[s]
        paid = fill * (1 + slippage)
        if sizing == "percent":  # this fraction of the cash, fees included
            units = cash * exposure / (paid * (1 + fees))
        else:  # equal slots: capital / N in value at the fill price, slippage and fees on top, less when cash runs short
            units = min(exposure * capital / len(symbols) / fill, cash / (paid * (1 + fees)))
        if units * paid <= 1e-9:
            skipped.append((s, signal_bar, "no_cash"))
            return
        cash -= units * paid * (1 + fees)
        t = RefTrade(s, bar, None, fill, None, units, "end_of_data", cost=units * paid * (1 + fees))
        trades.append(t)
        st["trade"] = t
        st["pos"] = {"bar": bar, "entry": fill, "peak": fill, "tp": None if tp is None else fill * (1 + tp),
                     "sl": None if sl is None else sl * fill, "trail": trail}

    for i in range(n):
        for s in symbols:  # every sell of the bar comes before any buy (cash is freed first)
            st, c = state[s], cols[s]
            if st["pending_out"] == i:
                if st["pos"] is not None:
                    sell(s, i, c["open"][i], exit_name)
                st["pending_out"] = None
            pos = st["pos"]
            if pos is not None and i > pos["bar"]:
                hit = _level_hits(pos, c["open"][i], c["high"][i], c["low"][i], order == "target_first")
                if hit:
                    sell(s, i, *hit)
                else:
                    pos["peak"] = max(pos["peak"], c["high"][i])
            opening = st["pending_in"] is not None and st["pending_in"][0] == i  # bought at this bar's open
            if (st["pos"] is not None or opening) and exits[s][i] and st["pending_out"] is None:
                if fill_at == "close":
                    sell(s, i, c["close"][i], exit_name)
                elif i + 1 < n:
                    st["pending_out"] = i + 1
            if st["pos"] is not None and max_bars is not None and st["pending_out"] is None and i - st["pos"]["bar"] >= max_bars:
                sell(s, i, c["close"][i], "time_exit")
        for s in symbols:
            st, c = state[s], cols[s]
            if st["pending_in"] is not None and st["pending_in"][0] == i:
                buy(s, i, c["open"][i], st["pending_in"][1])
                st["pending_in"] = None
        for s in symbols:  # entry signals at this bar's close
            st, c = state[s], cols[s]
            wants = entries[s][i] or st["carry"]
            carried, st["carry"] = st["carry"], False
            if not wants:
                continue
            fill_bar = i if fill_at == "close" else i + 1
            if st["exit_bar"] == fill_bar or st["pending_out"] == fill_bar:
                if reentry == "next_bar" and not carried:
                    st["carry"] = True
                else:
                    skipped.append((s, i, "exit_bar"))
                continue
            if st["pos"] is not None or st["pending_in"] is not None or st["pending_out"] is not None:
                continue
            if fill_bar >= n:
                skipped.append((s, i, "end_of_data"))
            elif fill_at == "close":
                buy(s, i, c["close"][i], i)
            else:
                st["pending_in"] = (fill_bar, i)
    equity = cash + sum(t.units * cols[t.symbol]["close"][-1] for t in trades if t.exit_bar is None)
    return trades, equity, skipped
