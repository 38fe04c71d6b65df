"""The intended meaning of the held-out phrasings, computed in plain pandas.

Written from the textbook definitions, independently of the compiler: an
oracle for "understood AND faithful". Each helper returns a Series on the
bars of one symbol; a condition is a boolean Series (NaN compares False).
"""
from __future__ import annotations

import pandas as pd


class Bars:
    """o, h, l, c, v of one symbol."""

    def __init__(self, df: pd.DataFrame):
        self.o, self.h, self.l, self.c, self.v = (df[k].astype(float) for k in ("open", "high", "low", "close", "volume"))


def sma(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n).mean()


def ema(x: pd.Series, n: int) -> pd.Series:
    return x.ewm(span=n, adjust=False, min_periods=n).mean()


def wilder(x: pd.Series, n: int) -> pd.Series:
    return x.ewm(alpha=1 / n, adjust=False, min_periods=n).mean()


def rsi(c: pd.Series, n: int = 14) -> pd.Series:
    change = c.diff()
    gain, loss = wilder(change.clip(lower=0), n), wilder((-change).clip(lower=0), n)
    return 100 - 100 / (1 + gain / loss)


def atr(d: Bars, n: int = 14) -> pd.Series:
    prev = d.c.shift(1)
    tr = pd.concat([d.h - d.l, (d.h - prev).abs(), (d.l - prev).abs()], axis=1).max(axis=1, skipna=False)
    return wilder(tr, n)


def macd(c: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[pd.Series, pd.Series]:
    line = ema(c, fast) - ema(c, slow)
    return line, ema(line, signal)


def bb(c: pd.Series, n: int = 20, k: float = 2) -> tuple[pd.Series, pd.Series]:
    mid, sd = sma(c, n), c.rolling(n).std(ddof=0)
    return mid + k * sd, mid - k * sd


def prev_max(x: pd.Series, n: int) -> pd.Series:
    """Highest value of the previous n bars (bar t excluded)."""
    return x.rolling(n).max().shift(1)


def prev_min(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n).min().shift(1)


def year_high(d: Bars) -> pd.Series:
    """The 52-week high: the highest high of the last 52 weeks, today included."""
    return d.h.rolling("364D").max()


def year_low(d: Bars) -> pd.Series:
    return d.l.rolling("364D").min()


def up(a, b) -> pd.Series:
    """a crosses above b: above now, at or below on the previous bar."""
    a1 = a.shift(1) if isinstance(a, pd.Series) else a
    b1 = b.shift(1) if isinstance(b, pd.Series) else b
    return (a > b) & (a1 <= b1)


def down(a, b) -> pd.Series:
    a1 = a.shift(1) if isinstance(a, pd.Series) else a
    b1 = b.shift(1) if isinstance(b, pd.Series) else b
    return (a < b) & (a1 >= b1)


def each(cond: pd.Series, n: int) -> pd.Series:
    """cond on each of the last n bars, t included."""
    return cond.fillna(False).astype(int).rolling(n).sum() == n


def within(cond: pd.Series, n: int) -> pd.Series:
    """cond on at least one of the last n bars, t included."""
    return cond.fillna(False).astype(int).rolling(n, min_periods=1).max() == 1


def roc(c: pd.Series, n: int) -> pd.Series:
    return 100 * (c / c.shift(n) - 1)
