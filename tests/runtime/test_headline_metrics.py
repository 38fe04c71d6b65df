"""The headline metrics (docs/metrics.md) against hand-computed values and against QuantStats,
given the same periods per year: 365 (24/7 crypto), 252 (an exchange calendar) and 52 (weekly bars)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import quantstats as qs

from stratexec_runtime.metrics import compute_metrics
from tests.runtime.test_risk_and_trade_metrics import case  # noqa: F401  (real backtests at 365, 252 and 52)

CAPITAL = 10_000.0
VALUES = [10_000.0, 10_200.0, 9_996.0, 10_500.0, 10_290.0]  # the equity at the close of each bar

def trades(dates) -> list[dict]:
    """A win, a loss (closed) and an open trade; only closed ones count in trades and win_rate."""
    def trade(entry, exit_, pnl, status):
        return {"symbol": "X", "entry_time": str(dates[entry].date()), "exit_time": str(dates[exit_].date()) if exit_ is not None else "",
                "pnl": pnl, "return_pct": pnl / 100, "status": status}
    return [trade(0, 1, 200.0, "closed"), trade(1, 2, -30.0, "closed"), trade(3, None, 90.0, "open")]


def hand_sharpe(values: list[float], periods: int) -> float:
    """Mean over sample standard deviation of the per-bar returns (the first against the capital), x sqrt(periods)."""
    series = [CAPITAL, *values]
    returns = [b / a - 1 for a, b in zip(series, series[1:])]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return mean / std * math.sqrt(periods)


@pytest.mark.parametrize("dates, periods", [
    (pd.date_range("2024-03-01", periods=5, freq="D"), 365),  # Fri..Tue: weekend bars, crypto
    (pd.bdate_range("2024-03-04", periods=5), 252),  # Mon..Fri: an exchange calendar
    (pd.DatetimeIndex(["2024-03-01", "2024-03-08", "2024-03-15", "2024-03-22", "2024-03-26"]), 52),  # weekly, cut last week
])
def test_worked_example_by_hand(dates, periods):
    m = compute_metrics(pd.Series(VALUES, index=dates), trades(dates), CAPITAL)
    assert m["periods_per_year"] == periods
    assert m["total_return"] == pytest.approx(2.9, rel=1e-12)  # 10,290 / 10,000 - 1
    assert m["max_drawdown"] == pytest.approx((9_996 / 10_200 - 1) * 100, rel=1e-12)  # -2.0%
    assert m["sharpe_ratio"] == pytest.approx(hand_sharpe(VALUES, periods), rel=1e-12)
    days = (dates[-1] - dates[0]).days + 1  # calendar days, both ends counted
    assert m["calendar_days"] == days
    assert m["cagr"] == pytest.approx((1.029 ** (365.25 / days) - 1) * 100, rel=1e-12)
    assert m["cagr_reliable"] is False  # under a year
    assert (m["trades"], m["open_trades"], m["win_rate"]) == (2, 1, 50.0)  # closed trades only


def test_benchmark_return_and_excess_by_hand():
    dates = pd.date_range("2024-03-01", periods=5, freq="D")
    bench = pd.Series([10_000.0, 10_100.0, 10_050.0, 10_300.0, 10_400.0], index=dates)
    m = compute_metrics(pd.Series(VALUES, index=dates), trades(dates), CAPITAL, bench)
    assert m["benchmark_return"] == pytest.approx(4.0, rel=1e-12)
    assert m["vs_benchmark"] == pytest.approx(2.9 - 4.0, rel=1e-12)


def test_sharpe_total_return_and_max_drawdown_match_quantstats(case):  # noqa: F811
    _, m, returns, ppy = case
    assert m["periods_per_year"] == ppy
    assert m["sharpe_ratio"] == pytest.approx(qs.stats.sharpe(returns, rf=0.0, periods=ppy), rel=1e-9)
    assert m["total_return"] == pytest.approx(qs.stats.comp(returns) * 100, rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(qs.stats.max_drawdown(returns) * 100, rel=1e-9)
