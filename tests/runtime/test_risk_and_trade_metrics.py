"""The risk and trade statistics beside the headline metrics, checked against
QuantStats (Sortino, volatility, drawdown periods) and against vectorbt's own
records read with pandas (exposure, fees, the trade statistics), on real
backtests of the bundled data at 365, 252 and 52 periods per year."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import quantstats as qs
import vectorbt as vbt

from services.common.config import project_root
from stratexec_runtime.data import read_price_csv
from stratexec_runtime.report import build_result

DATA = project_root() / "data" / "ohlcv"
CAPITAL = 10_000.0


def backtest(symbol: str, weekly: bool):
    """A 10/30 SMA crossover with fees, as a generated script would run it."""
    close = read_price_csv(DATA / f"{symbol}.csv")["close"].loc["2018-01-01":"2024-12-31"]
    if weekly:
        close = close.resample("W").last().dropna()
    fast, slow = close.rolling(10).mean(), close.rolling(30).mean()
    entries = (fast > slow) & (fast.shift() <= slow.shift())
    exits = (fast < slow) & (fast.shift() >= slow.shift())
    pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=CAPITAL, fees=0.001, slippage=0.0005,
                                    freq="7D" if weekly else "1D")
    return pf, build_result(pf, None, CAPITAL, [symbol])


CASES = {"BTC-USD daily (365)": ("BTC-USD", False, 365), "SPY daily (252)": ("SPY", False, 252),
         "BTC-USD weekly (52)": ("BTC-USD", True, 52)}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request):
    symbol, weekly, ppy = CASES[request.param]
    pf, result = backtest(symbol, weekly)
    assert result["metrics"]["periods_per_year"] == ppy
    equity = pd.Series(dict(result["equity"]))
    equity.index = pd.to_datetime(equity.index)
    assert equity.iloc[0] == CAPITAL  # no position on the first bar: QuantStats' returns start there too
    returns = equity.pct_change().fillna(0.0)
    return pf, result["metrics"], returns, ppy


def test_sortino_and_volatility_match_quantstats(case):
    _, m, returns, ppy = case
    assert m["sortino_ratio"] == pytest.approx(qs.stats.sortino(returns, periods=ppy), rel=1e-9)
    assert m["annual_volatility"] == pytest.approx(qs.stats.volatility(returns, periods=ppy) * 100, rel=1e-9)


def test_drawdown_durations_match_quantstats(case):
    _, m, returns, _ = case
    details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(returns))
    assert m["longest_drawdown_days"] == int(details["days"].max())
    assert m["max_drawdown_days"] == int(details.loc[details["max drawdown"].idxmin(), "days"])
    assert m["max_drawdown"] == pytest.approx(details["max drawdown"].min(), rel=1e-9)


def test_calmar_is_cagr_over_the_deepest_drawdown(case):
    _, m, _, _ = case
    assert m["calmar_ratio"] == pytest.approx(m["cagr"] / abs(m["max_drawdown"]), rel=1e-12)


def test_trade_statistics_match_vectorbts_records(case):
    pf, m, _, _ = case
    trades = pf.trades.records_readable
    closed = trades[trades["Status"] == "Closed"]
    wins, losses = closed[closed["PnL"] > 0], closed[closed["PnL"] < 0]
    assert m["profit_factor"] == pytest.approx(wins["PnL"].sum() / -losses["PnL"].sum(), rel=1e-9)
    assert m["expectancy"] == pytest.approx(closed["PnL"].mean(), rel=1e-9)
    assert m["avg_win_pct"] == pytest.approx(wins["Return"].mean() * 100, rel=1e-9)
    assert m["avg_loss_pct"] == pytest.approx(losses["Return"].mean() * 100, rel=1e-9)
    held = (closed["Exit Timestamp"] - closed["Entry Timestamp"]).dt.days
    assert m["avg_holding_days"] == pytest.approx(held.mean(), rel=1e-12)
    assert m["max_holding_days"] == held.max()
    assert m["fees_paid"] == pytest.approx(pf.orders.records_readable["Fees"].sum(), rel=1e-9)
    assert m["exposure_time"] == pytest.approx(pf.position_mask().mean() * 100, rel=1e-12)
    (row,) = m["per_symbol"]
    assert (row["trades"], row["open_trades"]) == (len(closed), len(trades) - len(closed))
    assert row["pnl"] == pytest.approx(trades["PnL"].sum(), rel=1e-9)
    assert row["win_rate"] == pytest.approx(len(wins) / len(closed) * 100, rel=1e-12)


def test_ratios_without_a_denominator_are_unset():
    from stratexec_runtime.metrics import compute_metrics

    flat = pd.Series([CAPITAL] * 10, index=pd.date_range("2024-01-01", periods=10))
    m = compute_metrics(flat, [], CAPITAL)
    assert (m["sortino_ratio"], m["calmar_ratio"], m["profit_factor"], m["expectancy"]) == (None, None, None, None)
    assert (m["longest_drawdown_days"], m["max_drawdown_days"], m["exposure_time"], m["fees_paid"]) == (0, 0, 0.0, 0.0)
    assert m["per_symbol"] == [] and not math.isnan(m["annual_volatility"])


def test_a_drawdown_still_open_at_the_end_lasts_to_the_last_bar():
    from stratexec_runtime.metrics import compute_metrics

    values = [10_000, 11_000, 10_500, 10_800, 10_900, 10_700]  # the 11,000 peak is never regained
    m = compute_metrics(pd.Series(values, index=pd.date_range("2024-01-01", periods=6)), [], 10_000)
    assert (m["longest_drawdown_days"], m["max_drawdown_days"]) == (4, 4)
    assert m["max_drawdown"] == pytest.approx((10_500 / 11_000 - 1) * 100)
    assert np.isclose(m["calmar_ratio"], m["cagr"] / abs(m["max_drawdown"]))
