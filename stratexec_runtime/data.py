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


def read_price_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a price file with columns date, open, high, low, close, volume."""
    frame = pd.read_csv(path)
    frame.columns = [c.strip().lower().replace(" ", "_") for c in frame.columns]
    time_col = "date" if "date" in frame.columns else frame.columns[0]
    frame[time_col] = pd.to_datetime(frame[time_col], utc=False)
    frame = frame.set_index(time_col).sort_index()
    frame.index.name = "date"
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return frame[PRICE_COLUMNS].astype(float)


def resample(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Daily bars as they are; '1w' builds weekly bars ending on the last bar of each week."""
    if timeframe in ("", "1d"):
        return frame
    if timeframe == "1w":
        weekly = frame.resample("W").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
        )
        return weekly.dropna(subset=["close"])
    raise ValueError(f"unsupported timeframe {timeframe!r}: use 1d or 1w")


def _download(symbol: str, start: str, end: str) -> pd.DataFrame:
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
    return raw[PRICE_COLUMNS].astype(float)


def load_prices(data: str | None, symbols: list[str], start: str, end: str, timeframe: str = "1d",
                warmup_bars: int = 0) -> dict[str, pd.DataFrame]:
    """Prices per resolved symbol, up to ``end``, resampled to ``timeframe``.

    Each frame starts ``warmup_bars`` bars before ``start`` when the data has
    them, so indicators are warm at ``start``; scripts trade from ``start``
    only. ``data`` is a CSV file (used for a single symbol), a directory
    holding ``<SYMBOL>.csv`` files, or None to download with yfinance.
    """
    out: dict[str, pd.DataFrame] = {}
    resolved = list(dict.fromkeys(resolve_symbol(s) for s in symbols))
    days_per_bar = 7 if timeframe == "1w" else 1
    for symbol in resolved:
        if data is None:
            first_day = pd.Timestamp(start) - pd.Timedelta(days=2 * warmup_bars * days_per_bar + 7)
            frame = _download(symbol, first_day.strftime("%Y-%m-%d"), end)
        else:
            path = pathlib.Path(data)
            if path.is_dir():
                path = path / f"{symbol}.csv"
            elif len(resolved) > 1:
                raise ValueError("several symbols need --data to be a directory of <SYMBOL>.csv files")
            frame = read_price_csv(path)
        frame = resample(frame.loc[: pd.Timestamp(end)], timeframe)
        first_traded = int(frame.index.searchsorted(pd.Timestamp(start)))
        if first_traded >= len(frame):
            raise ValueError(f"no prices for {symbol} between {start} and {end}")
        out[symbol] = frame.iloc[max(0, first_traded - warmup_bars):]
    return out
