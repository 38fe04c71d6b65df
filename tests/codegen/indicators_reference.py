"""Independent reference implementations (explicit loops) of the indicator
definitions, to check the generated pandas code against."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _series(values, index) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=index)


def sma(x: pd.Series, n: int) -> pd.Series:
    v = x.to_numpy(dtype=float)
    out = [math.nan] * len(v)
    for i in range(n - 1, len(v)):
        out[i] = sum(v[i - n + 1 : i + 1]) / n
    return _series(out, x.index)


def wma(x: pd.Series, n: int) -> pd.Series:
    v = x.to_numpy(dtype=float)
    out = [math.nan] * len(v)
    total = n * (n + 1) / 2
    for i in range(n - 1, len(v)):
        out[i] = sum((k + 1) * v[i - n + 1 + k] for k in range(n)) / total
    return _series(out, x.index)


def smoothed(x: pd.Series, alpha: float, min_periods: int) -> pd.Series:
    """avg = value for the first valid value, then avg += alpha * (value - avg); NaN until min_periods values."""
    out, avg, seen = [], None, 0
    for value in x.to_numpy(dtype=float):
        if math.isnan(value):
            out.append(math.nan if avg is None or seen < min_periods else avg)
            continue
        avg = value if avg is None else avg + alpha * (value - avg)
        seen += 1
        out.append(avg if seen >= min_periods else math.nan)
    return _series(out, x.index)


def ema(x: pd.Series, n: int) -> pd.Series:
    return smoothed(x, 2 / (n + 1), n)


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    change = close.diff()
    gain = change.where(change.isna() | (change > 0), 0.0)
    loss = (-change).where(change.isna() | (change < 0), 0.0)
    avg_gain, avg_loss = smoothed(gain, 1 / n, n), smoothed(loss, 1 / n, n)
    return 100 - 100 / (1 + avg_gain / avg_loss)


def macd(close: pd.Series, fast=12, slow=26, signal=9):
    line = ema(close, fast) - ema(close, slow)
    sig = smoothed(line, 2 / (signal + 1), signal)
    return line, sig, line - sig


def bollinger(close: pd.Series, n=20, k=2.0):
    v = close.to_numpy(dtype=float)
    mid, up, low = [math.nan] * len(v), [math.nan] * len(v), [math.nan] * len(v)
    for i in range(n - 1, len(v)):
        window = v[i - n + 1 : i + 1]
        m = sum(window) / n
        sd = math.sqrt(sum((w - m) ** 2 for w in window) / n)
        mid[i], up[i], low[i] = m, m + k * sd, m - k * sd
    return _series(mid, close.index), _series(up, close.index), _series(low, close.index)


def atr(bars: pd.DataFrame, n=14) -> pd.Series:
    h, l, c = (bars[k].to_numpy(dtype=float) for k in ("high", "low", "close"))
    tr = [math.nan] + [max(h[i] - l[i], abs(h[i] - c[i - 1]), abs(l[i] - c[i - 1])) for i in range(1, len(c))]
    return smoothed(_series(tr, bars.index), 1 / n, n)


def highest(x: pd.Series, n: int) -> pd.Series:
    """max of the previous n values (t excluded)."""
    v = x.to_numpy(dtype=float)
    return _series([max(v[i - n : i]) if i >= n else math.nan for i in range(len(v))], x.index)


def lowest(x: pd.Series, n: int) -> pd.Series:
    v = x.to_numpy(dtype=float)
    return _series([min(v[i - n : i]) if i >= n else math.nan for i in range(len(v))], x.index)


def lag(x: pd.Series, n: int) -> pd.Series:
    v = x.to_numpy(dtype=float)
    return _series([v[i - n] if i >= n else math.nan for i in range(len(v))], x.index)
