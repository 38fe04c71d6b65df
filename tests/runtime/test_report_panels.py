"""The report's return panels agree with QuantStats on a real backtest."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from stratexec_cli import report_panels
from tests.runtime.test_risk_and_trade_metrics import CAPITAL, backtest


@pytest.fixture(scope="module")
def equity() -> pd.Series:
    _, result = backtest("BTC-USD", weekly=False)
    series = pd.Series(dict(result["equity"]))
    series.index = pd.to_datetime(series.index)
    return series


def test_monthly_and_yearly_returns_match_quantstats(equity):
    returns = equity.pct_change().fillna(0.0)  # the first bar holds no position: 0 against the capital
    table = qs.stats.monthly_returns(returns, eoy=True, compounded=True)
    ours = report_panels.period_returns(equity, CAPITAL, "ME")
    for stamp, value in ours.items():
        assert value == pytest.approx(table.loc[str(stamp.year)].iloc[stamp.month - 1] * 100, abs=1e-9)
    yearly = report_panels.period_returns(equity, CAPITAL, "YE")
    for stamp, value in yearly.items():
        assert value == pytest.approx(table.loc[str(stamp.year), "EOY"] * 100, abs=1e-9)


def test_rolling_sharpe_and_volatility_match_quantstats(equity):
    returns = report_panels.bar_returns(equity, CAPITAL)
    figure = report_panels.rolling_panel(equity, CAPITAL, 365)
    sharpe, vol = (np.asarray(trace.y, dtype=float) for trace in figure.data)
    expected = qs.stats.rolling_sharpe(returns, rolling_period=182, periods_per_year=365).to_numpy()
    finite = np.isfinite(expected)
    assert finite.sum() > 1000 and np.allclose(sharpe[finite], expected[finite], rtol=1e-9)
    expected_vol = qs.stats.rolling_volatility(returns, rolling_period=182, periods_per_year=365).to_numpy() * 100
    finite = np.isfinite(expected_vol)
    assert np.allclose(vol[finite], expected_vol[finite], rtol=1e-9)


def test_top_drawdowns_are_the_deepest_periods_in_order(equity):
    rows = report_panels.top_drawdowns(equity, CAPITAL)
    depths = [float(r[3].rstrip("%")) for r in rows]
    assert len(rows) == 5 and depths == sorted(depths)
    peak = equity.cummax().clip(lower=CAPITAL)
    assert depths[0] == pytest.approx(((equity / peak - 1).min() * 100), abs=0.005)
    assert all(int(r[4]) >= 1 for r in rows) and not math.isnan(depths[-1])
