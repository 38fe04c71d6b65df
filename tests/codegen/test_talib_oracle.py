"""TA-Lib (the C library, PyPI ta-lib) as the oracle of the indicators as the generated scripts compute them.

The indicator code is the exact statements the compiler emits (Series.lines), run on the bundled
daily bars of BTC-USD (24/7) and SPY (an exchange calendar). SMA, WMA, ROC and Bollinger Bands equal TA-Lib.
EMA, MACD, RSI and ATR use TA-Lib's recursions but another seed (the first value, where TA-Lib
seeds with the SMA of the first n): after the warm-up (Series.settled_after, the bars the compiler
reads before start_date) they differ by less than SEEDED_TOLERANCE, and once the seed is forgotten
(the last 1,000 bars) they are equal to rounding.
"""
import numpy as np
import pandas as pd
import pytest

from services.codegen.grammar import indicators as ind
from tests.codegen.conftest import DATA_DIR
from stratexec_runtime.data import read_price_csv

talib = pytest.importorskip("talib")

# |ours - TA-Lib| after the warm-up: a fraction of the close for price-level indicators, points for RSI.
SEEDED_TOLERANCE = {"close": 0.0005, "rsi": 0.5}  # measured at most 0.039% of the close and 0.31 RSI points
EXACT = 1e-9  # relative, for identical definitions (floating-point rounding only)


def generated(series, bars: pd.DataFrame) -> np.ndarray:
    """Run the statements a generated script holds for ``series`` (and what it depends on)."""
    namespace = {"pd": pd, "np": np, "ohlc": bars, "close": bars["close"]}
    seen = set()
    for s in series.walk():
        if s.key not in seen:
            seen.add(s.key)
            for line in s.lines:
                exec(line, namespace)
    return namespace[series.var].to_numpy()


def cases(bars):
    c, h, lo = (bars[k].to_numpy() for k in ("close", "high", "low"))
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, _middle, lower = talib.BBANDS(c, 20, 2, 2, 0)
    return {  # name: (our series, TA-Lib's values, exact?, scale)
        "SMA(20)": (ind.sma(20), talib.SMA(c, 20), True, "close"),
        "SMA(200)": (ind.sma(200), talib.SMA(c, 200), True, "close"),
        "WMA(20)": (ind.wma(20), talib.WMA(c, 20), True, "close"),
        "ROC(10)": (ind.roc(10), talib.ROC(c, 10), True, "close"),
        "BB upper(20, 2)": (ind.bb_band("upper", 20, 2), upper, True, "close"),
        "BB lower(20, 2)": (ind.bb_band("lower", 20, 2), lower, True, "close"),
        "EMA(20)": (ind.ema(20), talib.EMA(c, 20), False, "close"),
        "EMA(150)": (ind.ema(150), talib.EMA(c, 150), False, "close"),
        "MACD line": (ind.macd_line(), macd, False, "close"),
        "MACD signal": (ind.macd_signal(), signal, False, "close"),
        "MACD histogram": (ind.macd_hist(), hist, False, "close"),
        "RSI(14)": (ind.rsi(14), talib.RSI(c, 14), False, "rsi"),
        "ATR(14)": (ind.atr(14), talib.ATR(h, lo, c, 14), False, "close"),
    }


@pytest.fixture(scope="module", params=["BTC-USD", "SPY"])
def bars(request):
    return read_price_csv(DATA_DIR / f"{request.param}.csv")


@pytest.mark.parametrize("name", list(cases(read_price_csv(DATA_DIR / "SPY.csv").iloc[:300])))
def test_generated_indicator_against_talib_after_the_warmup(bars, name):
    series, reference, exact, scale = cases(bars)[name]
    ours = generated(series, bars)
    after = series.settled_after  # the first bar a backtest may trade with, given the compiler's warm-up
    assert not np.isnan(ours[after:]).any() and not np.isnan(reference[after:]).any()
    diff = np.abs(ours[after:] - reference[after:])
    close = bars["close"].to_numpy()[after:]
    if exact:
        assert (diff / np.maximum(np.abs(reference[after:]), 1.0)).max() < EXACT  # ROC can be 0
        return
    measure = diff / close if scale == "close" else diff
    assert measure.max() < SEEDED_TOLERANCE[scale], (name, measure.max())
    forgotten = measure[-1000:]  # thousands of bars later the seed weighs nothing
    assert forgotten.max() < (EXACT if scale == "close" else 1e-9 * 100), (name, forgotten.max())
