"""Warm-up sized from the longest look-back and the smoothing: each indicator has settled at start_date.

The claim checked: with warmup_bars of history before start_date, an indicator's value at start_date
differs from the same indicator computed on the whole history by less than the stated tolerance
(the seed of an EMA or Wilder average keeps exp(-6) ~ 0.25% of its weight after the warm-up).
"""
import pandas as pd
import pytest

from services.codegen import compiler
from services.codegen.emit import emit
from services.codegen.grammar import indicators as ind
from stratexec_runtime import load_prices
from tests.codegen.conftest import DATA_DIR, params

SPY = DATA_DIR / "SPY.csv"
START, END = "2015-01-02", "2015-12-31"


def analysis(rule: str, timeframe: str = "1d"):
    doc = {"nodes": [{"id": "entry", "type": "entry_condition", "meta": {"rules": [rule]}}]}
    return compiler.analyze(doc, params(symbols=["SPY"], benchmark="SPY", timeframe=timeframe,
                                        start_date=START, end_date=END))


@pytest.mark.parametrize("rule, timeframe, bars", [
    ("Buy when price crosses above the 150-week EMA", "1w", 3 * 151 + 1),
    ("Buy when RSI(14) is below 30", "1d", 1 + 6 * 14 + 1),
    ("Buy when MACD crosses above the signal line", "1d", 3 * 27 + 3 * 10 + 1),
    ("Buy when price crosses above the 200-day SMA", "1d", 199 + 1),
    ("Buy when the close is above the upper Bollinger Band", "1d", 19 + 1),
])
def test_warmup_bars_follow_look_back_and_smoothing(rule, timeframe, bars):
    a = analysis(rule, timeframe)
    assert a.warmup_bars == bars
    assert a.to_proto().warmup_bars == bars
    assert f"warmup_bars = {bars} {a.params.bar_words} bars" in " ".join(emit(a).split())


def _ema(series, span):
    return series.ewm(span=span, adjust=False, min_periods=span).mean()


def _wilder_rsi(close, n):
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    return 100 - 100 / (1 + gain / loss)


@pytest.mark.parametrize("rule, timeframe, compute, tolerance", [
    # relative error of the EMA, below the seed's remaining weight (0.25%) times the price's move
    ("Buy when price crosses above the 150-week EMA", "1w", lambda bars: _ema(bars["close"], 150), 0.0025),
    ("Buy when RSI(14) is below 30", "1d", lambda bars: _wilder_rsi(bars["close"], 14), 0.0025),
])
def test_an_indicator_has_settled_at_start_date(rule, timeframe, compute, tolerance):
    a = analysis(rule, timeframe)
    warm = load_prices(str(SPY), ["SPY"], START, END, timeframe, warmup_bars=a.warmup_bars)["SPY"]
    full = load_prices(str(SPY), ["SPY"], START, END, timeframe, warmup_bars=100_000)["SPY"]
    assert len(full) > len(warm)  # SPY has more history than the warm-up: the comparison means something
    short, long = compute(warm).loc[START:], compute(full).loc[START:]
    assert ((short - long).abs() / long.abs()).max() < tolerance
    assert ind.SETTLE_TIME_CONSTANTS == 6
