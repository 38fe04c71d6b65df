"""Pinned metric definitions (docs/metrics.md). The only place they live.

Scripts compute them for a standalone run; the sandbox service recomputes
them from the equity curve and trades that a script returns, and rejects a
result whose reported metrics disagree.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd


def periods_per_year(index: pd.DatetimeIndex) -> int:
    """52 for weekly bars (a typical gap of 6 days or more: a week cut by the start or end
    date, or by a holiday, is shorter), else 365 when the calendar has weekend bars
    (24/7 crypto) and 252 for exchange calendars."""
    if len(index) > 1 and pd.Series(index[1:] - index[:-1]).median() >= pd.Timedelta(days=6):
        return 52
    return 365 if any(ts.day_of_week >= 5 for ts in index) else 252


def total_return_pct(v_start: float, v_end: float) -> float:
    return (v_end / v_start - 1.0) * 100.0


def compute_metrics(
    equity: pd.Series,
    trades: Iterable[Mapping],
    initial_value: float,
    benchmark_equity: pd.Series | None = None,
) -> dict:
    """Metrics of an equity curve (mark-to-market per bar, net of costs).

    ``trades`` are mappings with ``pnl`` and ``status`` ("closed"/"open").
    """
    equity = equity.astype(float)
    index = pd.DatetimeIndex(equity.index)
    v_end = float(equity.iloc[-1])
    calendar_days = int((index[-1] - index[0]).days) + 1
    ppy = periods_per_year(index)

    # Returns per bar, the first one against the initial capital.
    values = np.concatenate([[initial_value], equity.to_numpy()])
    returns = values[1:] / values[:-1] - 1.0
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    sharpe = float(np.mean(returns) / std * math.sqrt(ppy)) if std > 0 else None

    max_dd = float(np.min(drawdown_pct(equity.to_numpy(), initial_value), initial=0.0))

    closed = [t for t in trades if t["status"] == "closed"]
    open_count = sum(1 for t in trades if t["status"] == "open")
    wins = sum(1 for t in closed if t["pnl"] > 0)

    total = total_return_pct(initial_value, v_end)
    growth = v_end / initial_value
    cagr = ((growth ** (365.25 / calendar_days)) - 1.0) * 100.0 if growth > 0 else -100.0

    metrics = {
        "total_return": total,
        "cagr": cagr,
        "cagr_reliable": calendar_days >= 365,
        "sharpe_ratio": sharpe,
        "max_drawdown": max_dd,
        "win_rate": (wins / len(closed) * 100.0) if closed else None,
        "trades": len(closed),
        "open_trades": open_count,
        "vs_benchmark": None,
        "benchmark_return": None,
        "periods_per_year": ppy,
        "calendar_days": calendar_days,
        "final_value": v_end,
        "initial_value": float(initial_value),
    }
    metrics.update(risk_and_trade_metrics(equity, returns, ppy, list(trades), float(initial_value), cagr, max_dd))
    if benchmark_equity is not None and len(benchmark_equity):
        bench_total = total_return_pct(initial_value, float(benchmark_equity.iloc[-1]))
        metrics["benchmark_return"] = bench_total
        metrics["vs_benchmark"] = total - bench_total
    return metrics


def metrics_agree(a: Mapping, b: Mapping, rel: float = 1e-6) -> list[str]:
    """Names of the metrics on which two metric dicts disagree."""
    bad = []
    for key in ("total_return", "cagr", "sharpe_ratio", "max_drawdown", "win_rate", "trades", "open_trades", "vs_benchmark"):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            if (x is None) != (y is None):
                bad.append(key)
            continue
        if not math.isclose(float(x), float(y), rel_tol=rel, abs_tol=1e-9):
            bad.append(key)
    return bad


# ---------------------------------------------------------------------------
# Risk and trade statistics (docs/metrics.md, "More metrics"). Ratios are None
# where their denominator is zero or there is nothing to average.


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def drawdown_pct(values, initial_value: float) -> np.ndarray:
    """V / cummax(V) - 1 per bar in percent, the running peak starting at the initial capital."""
    values = np.asarray(values, dtype=float)
    peak = np.maximum.accumulate(np.concatenate([[initial_value], values]))[1:]
    return (values / peak - 1.0) * 100.0


def underwater_periods(equity: pd.Series, initial_value: float) -> list[tuple[pd.Timestamp, pd.Timestamp, float]]:
    """(first bar under the previous peak, last bar before it is regained, depth %) of each drawdown."""
    depth = drawdown_pct(equity.to_numpy(), initial_value) / 100.0
    periods, start = [], None
    for i, below in enumerate(depth < 0):
        if below and start is None:
            start = i
        if start is not None and (not below or i == len(depth) - 1):
            last = i if below else i - 1
            periods.append((equity.index[start], equity.index[last], float(depth[start:last + 1].min() * 100.0)))
            start = None
    return periods


def exposure_bars(index: pd.DatetimeIndex, trades: Iterable[Mapping]) -> int:
    """Bars at whose close some position is held: entry bar up to, not including, the exit bar."""
    held = np.zeros(len(index), dtype=bool)
    for t in trades:
        first = index.searchsorted(pd.Timestamp(t["entry_time"]))
        last = index.searchsorted(pd.Timestamp(t["exit_time"])) if t["exit_time"] else len(index)
        held[first:last] = True
    return int(held.sum())


def risk_and_trade_metrics(equity: pd.Series, returns: np.ndarray, ppy: int, trades: list[Mapping],
                           initial_value: float, cagr: float, max_dd: float) -> dict:
    downside = math.sqrt(float(np.sum(np.minimum(returns, 0.0) ** 2)) / len(returns)) if len(returns) else 0.0
    closed = [t for t in trades if t["status"] == "closed"]
    wins = [t for t in closed if t["pnl"] > 0]
    losses = [t for t in closed if t["pnl"] < 0]
    holding = [(pd.Timestamp(t["exit_time"]) - pd.Timestamp(t["entry_time"])).days for t in closed]
    periods = underwater_periods(equity, initial_value)
    days = [(end - start).days + 1 for start, end, _ in periods]
    deepest = min(periods, key=lambda p: p[2]) if periods else None
    return {
        "sortino_ratio": _ratio(float(np.mean(returns)) * math.sqrt(ppy), downside) if len(returns) else None,
        "calmar_ratio": _ratio(cagr, abs(max_dd)),
        "annual_volatility": float(np.std(returns, ddof=1) * math.sqrt(ppy) * 100.0) if len(returns) > 1 else 0.0,
        "exposure_time": exposure_bars(pd.DatetimeIndex(equity.index), trades) / len(equity) * 100.0,
        "profit_factor": _ratio(sum(t["pnl"] for t in wins), -sum(t["pnl"] for t in losses)),
        "expectancy": _mean([t["pnl"] for t in closed]),
        "avg_win_pct": _mean([t["return_pct"] for t in wins]),
        "avg_loss_pct": _mean([t["return_pct"] for t in losses]),
        "avg_holding_days": _mean(holding),
        "max_holding_days": max(holding) if holding else 0,
        "longest_drawdown_days": max(days) if days else 0,
        "max_drawdown_days": (deepest[1] - deepest[0]).days + 1 if deepest else 0,
        "fees_paid": float(sum(t.get("fees", 0.0) for t in trades)),
        "per_symbol": per_symbol(trades),
    }


def per_symbol(trades: list[Mapping]) -> list[dict]:
    """Trades, win rate, net PnL and fees of each symbol, in order of first trade."""
    out: dict[str, dict] = {}
    for t in trades:
        row = out.setdefault(t["symbol"], {"symbol": t["symbol"], "trades": 0, "open_trades": 0, "wins": 0,
                                          "pnl": 0.0, "fees": 0.0})
        row["trades" if t["status"] == "closed" else "open_trades"] += 1
        row["wins"] += t["status"] == "closed" and t["pnl"] > 0
        row["pnl"] += t["pnl"]
        row["fees"] += t.get("fees", 0.0)
    for row in out.values():
        wins = row.pop("wins")  # popped first: a symbol with open trades only has no win rate but no "wins" either
        row["win_rate"] = wins / row["trades"] * 100.0 if row["trades"] else None
    return list(out.values())
