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

    running_max = np.maximum.accumulate(values)
    max_dd = float(np.min(values / running_max - 1.0) * 100.0)

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
