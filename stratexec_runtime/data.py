"""Price loading for strategy scripts: prepared CSV files, or yfinance when
run standalone without a data file."""
from __future__ import annotations

import os
import pathlib

import pandas as pd

PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]
CRYPTO = {"BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "LTC", "BNB", "DOT", "AVAX"}


def resolve_symbol(symbol: str) -> str:
    """'btc' -> 'BTC-USD'; other symbols are upper-cased as given."""
    sym = symbol.strip().upper()
    return f"{sym}-USD" if sym in CRYPTO else sym


def adjust(frame: pd.DataFrame, prices: str, origin: str = "") -> pd.DataFrame:
    """``prices="raw"``: the bars as traded. ``"total_return"``: dividends reinvested, the way
    yfinance's auto_adjust does it: open, high, low and close times adj_close / close (volume as is)."""
    if prices == "raw":
        return frame[PRICE_COLUMNS]
    if prices != "total_return":
        raise ValueError(f"prices {prices!r}: use raw or total_return")
    if "adj_close" not in frame.columns or frame["adj_close"].isna().all():
        raise ValueError(f"{origin or 'the data'} has no adj_close column: prices=total_return needs it")
    ratio = (frame["adj_close"] / frame["close"]).fillna(1.0)
    out = frame[PRICE_COLUMNS].copy()
    for column in ("open", "high", "low", "close"):
        out[column] = out[column] * ratio
    return out


def read_price_csv(path: str | os.PathLike, prices: str = "raw") -> pd.DataFrame:
    """Read a price file with columns date, open, high, low, close[, adj_close], volume."""
    frame = pd.read_csv(path)
    frame.columns = [c.strip().lower().replace(" ", "_") for c in frame.columns]
    time_col = "date" if "date" in frame.columns else frame.columns[0]
    frame[time_col] = pd.to_datetime(frame[time_col], utc=False)
    frame = frame.set_index(time_col).sort_index()
    frame.index.name = "date"
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return adjust(frame.astype({c: float for c in frame.columns}), prices, str(path))


WEEKLY_AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def resample(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Daily bars as they are; '1w' builds one bar per calendar week (Monday to Sunday)
    of the days present, labelled by its last trading day (a Friday for an exchange,
    a Sunday for crypto, the last day of a cut week). A bar holds only days of ``frame``."""
    if timeframe in ("", "1d"):
        return frame
    if timeframe == "1w":
        if frame.empty:
            return frame
        week = frame.index.to_period("W-SUN")
        weekly = frame.groupby(week).agg(WEEKLY_AGG)
        weekly.index = pd.DatetimeIndex(frame.index.to_series().groupby(week).max().to_numpy(), name=frame.index.name)
        return weekly.dropna(subset=["close"])
    raise ValueError(f"unsupported timeframe {timeframe!r}: use 1d or 1w")


def window_bars(frame: pd.DataFrame, start: str, end: str, timeframe: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(warm-up bars before ``start``, bars of ``start``..``end``) at ``timeframe``.

    The two sides are resampled apart: a week cut by ``start`` gives a last warm-up bar
    (its days before ``start``) and a first traded bar (its days from ``start``), so
    no traded bar holds a day before ``start`` and none holds a day after ``end``.
    """
    start_ts = pd.Timestamp(start)
    end_ts = pd.Timestamp(end) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)  # the whole end day
    before = frame.loc[frame.index < start_ts]
    inside = frame.loc[(frame.index >= start_ts) & (frame.index <= end_ts)]
    return resample(before, timeframe), resample(inside, timeframe)


def _download(symbol: str, start: str, end: str, prices: str = "raw") -> pd.DataFrame:
    """Daily bars from yfinance, from ``start`` (already moved back for warm-up) to ``end``."""
    import yfinance as yf  # only for standalone runs on a machine with network

    end_exclusive = (pd.Timestamp(end) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    raw = yf.download(symbol, start=start, end=end_exclusive, auto_adjust=False, progress=False)
    if raw is None or raw.empty:
        raise ValueError(f"yfinance returned no data for {symbol}")
    if isinstance(raw.columns, pd.MultiIndex):
        raw.columns = raw.columns.get_level_values(0)
    raw.columns = [c.lower().replace(" ", "_") for c in raw.columns]
    raw.index = pd.to_datetime(raw.index).tz_localize(None)
    raw.index.name = "date"
    return adjust(raw.astype(float), prices, f"yfinance {symbol}")


def load_prices(data: str | None, symbols: list[str], start: str, end: str, timeframe: str = "1d",
                warmup_bars: int = 0, prices: str = "raw") -> dict[str, pd.DataFrame]:
    """Prices per resolved symbol, up to ``end``, resampled to ``timeframe`` (see window_bars).

    Each frame starts ``warmup_bars`` bars before ``start`` when the data has
    them, so indicators are warm at ``start``; scripts trade from ``start``
    only. ``data`` is a CSV file (used for a single symbol), a directory
    holding ``<SYMBOL>.csv`` files, or None to download with yfinance.
    ``prices`` is "raw" or "total_return" (see ``adjust``).
    """
    out: dict[str, pd.DataFrame] = {}
    resolved = list(dict.fromkeys(resolve_symbol(s) for s in symbols))
    days_per_bar = 7 if timeframe == "1w" else 1
    for symbol in resolved:
        if data is None:
            first_day = pd.Timestamp(start) - pd.Timedelta(days=2 * warmup_bars * days_per_bar + 7)
            frame = _download(symbol, first_day.strftime("%Y-%m-%d"), end, prices)
        else:
            path = pathlib.Path(data)
            if path.is_dir():
                path = path / f"{symbol}.csv"
            elif len(resolved) > 1:
                raise ValueError("several symbols need --data to be a directory of <SYMBOL>.csv files")
            frame = read_price_csv(path, prices)
        warmup, window = window_bars(frame, start, end, timeframe)
        if window.empty:
            raise ValueError(f"no prices for {symbol} between {start} and {end}")
        out[symbol] = pd.concat([warmup.iloc[len(warmup) - min(warmup_bars, len(warmup)):], window])
    return out
