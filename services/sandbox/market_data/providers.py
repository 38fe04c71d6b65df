"""Price providers: full daily history of one symbol as a DataFrame.

Every provider returns a frame indexed by date (ascending, unique) with
columns open, high, low, close, volume (and adj_close when the source has
it), or raises SymbolNotFound / DataUnavailable. ``WithUploads`` adds a
user's own datasets ("@NAME"), whose bars come with the request.
"""
from __future__ import annotations

import abc
import hashlib
import io
import logging
import os
import pathlib
import threading
import time

import pandas as pd

from services.common import errors
from stratexec_runtime.data import PRICE_COLUMNS

log = logging.getLogger("sandbox.market_data")


class SymbolNotFound(LookupError):
    def __init__(self, symbol: str, provider: str, known: list[str] | None = None):
        self.symbol, self.provider, self.known = symbol, provider, known or []
        hint = f" (available: {', '.join(self.known)})" if self.known else ""
        super().__init__(f"no data for symbol {symbol!r} in provider {provider!r}{hint}")


class DataUnavailable(RuntimeError):
    """The provider cannot answer now (network, broken file)."""


def normalise(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Lower-case columns, date index, sorted, unique; checks the price columns."""
    frame = frame.copy()
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    if not isinstance(frame.index, pd.DatetimeIndex):
        time_col = "date" if "date" in frame.columns else frame.columns[0]
        frame[time_col] = pd.to_datetime(frame[time_col])
        frame = frame.set_index(time_col)
    if frame.index.tz is not None:
        frame.index = frame.index.tz_localize(None)
    frame.index.name = "date"
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataUnavailable(f"{origin}: missing columns {missing}")
    columns = ["open", "high", "low", "close"] + (["adj_close"] if "adj_close" in frame.columns else []) + ["volume"]
    return frame[columns].dropna(subset=["close"])


class PriceProvider(abc.ABC):
    name: str = ""
    remote = False  # True when daily() may wait on the network (run it off the event loop)

    @abc.abstractmethod
    def daily(self, symbol: str) -> pd.DataFrame:
        """Full daily history of a resolved symbol."""

    def symbols(self) -> list[str]:
        """Symbols known without a network call (for error messages)."""
        return []

    def describe(self) -> str:
        return self.name

    def origin(self, symbol: str) -> str:
        """The provider name a symbol's provenance records."""
        return self.name


class WithUploads(PriceProvider):
    """A provider and a user's uploaded datasets ("@NAME" symbols, their bars sent with the request)."""

    UPLOADED = "uploaded"

    def __init__(self, base: PriceProvider, uploads: dict[str, pd.DataFrame]):
        self.base, self.uploads = base, uploads
        self.name, self.remote = base.name, base.remote

    @classmethod
    def of(cls, base: PriceProvider, uploads) -> "WithUploads":
        """From sandbox.v1.UploadedBars; INVALID_ARGUMENT when a dataset's bytes are not the ones hashed."""
        frames = {}
        for i, upload in enumerate(uploads):
            if hashlib.sha256(upload.csv).hexdigest() != upload.sha256:
                raise errors.invalid_argument(f"uploaded bars of {upload.symbol} do not match their sha256",
                                              [(f"uploads[{i}].sha256", "does not match csv")])
            frames[upload.symbol] = normalise(pd.read_csv(io.BytesIO(upload.csv)), upload.symbol)
        return cls(base, frames)

    def daily(self, symbol: str) -> pd.DataFrame:
        return self.uploads[symbol] if symbol in self.uploads else self.base.daily(symbol)

    def symbols(self) -> list[str]:
        return [*self.base.symbols(), *self.uploads]

    def origin(self, symbol: str) -> str:
        return self.UPLOADED if symbol in self.uploads else self.base.origin(symbol)


class CsvDirectoryProvider(PriceProvider):
    """A directory of ``<SYMBOL>.csv`` files (date, open, high, low, close[, adj_close], volume)."""

    name = "csv"

    def __init__(self, directory: str | os.PathLike):
        self.directory = pathlib.Path(directory)
        self._cache: dict[str, tuple[float, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.name} ({self.directory})"

    def symbols(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.csv"))

    def _path(self, symbol: str) -> pathlib.Path:
        if not symbol or "/" in symbol or symbol.startswith(".") or "\x00" in symbol:
            raise SymbolNotFound(symbol, self.name, self.symbols())
        return self.directory / f"{symbol}.csv"

    def daily(self, symbol: str) -> pd.DataFrame:
        path = self._path(symbol)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            raise SymbolNotFound(symbol, self.name, self.symbols()) from None
        with self._lock:
            hit = self._cache.get(symbol)
            if hit and hit[0] == mtime:
                return hit[1]
        try:
            frame = normalise(pd.read_csv(path), str(path))
        except (ValueError, OSError) as exc:
            raise DataUnavailable(f"{path}: {exc}") from exc
        with self._lock:
            self._cache[symbol] = (mtime, frame)
        return frame


class BundledProvider(CsvDirectoryProvider):
    """The project's sample dataset (real Yahoo daily bars, data/ohlcv): offline."""

    name = "bundled"


class YFinanceProvider(PriceProvider):
    """Live Yahoo Finance daily bars through yfinance, with an on-disk cache.

    A cached file younger than ``ttl_seconds`` is used as it is; an older one
    is refreshed, and kept (with a warning) when the download fails.
    """

    name = "yfinance"
    remote = True

    def __init__(self, cache_dir: str | os.PathLike, ttl_seconds: int = 6 * 3600, downloader=None):
        self.cache = CsvDirectoryProvider(cache_dir)
        self.cache_dir = pathlib.Path(cache_dir)
        self.ttl_seconds = ttl_seconds
        self._download = downloader or self._yf_download
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.name} (cache {self.cache_dir})"

    def symbols(self) -> list[str]:
        return self.cache.symbols()

    @staticmethod
    def _yf_download(symbol: str) -> pd.DataFrame:
        import yfinance as yf  # imported on first use: slow, and only this provider needs it

        raw = yf.download(symbol, period="max", interval="1d", auto_adjust=False, progress=False, threads=False)
        if raw is None or raw.empty:
            return pd.DataFrame()
        if isinstance(raw.columns, pd.MultiIndex):
            raw.columns = raw.columns.get_level_values(0)
        return raw

    def daily(self, symbol: str) -> pd.DataFrame:
        path = self.cache._path(symbol)
        with self._lock:
            fresh = path.exists() and time.time() - path.stat().st_mtime < self.ttl_seconds
            if not fresh:
                try:
                    raw = self._download(symbol)
                except Exception as exc:  # network errors of every kind
                    if path.exists():
                        log.warning("yfinance refresh failed, using the stale cache", extra={"fields": {"symbol": symbol, "error": repr(exc)}})
                        return self.cache.daily(symbol)
                    raise DataUnavailable(f"yfinance download of {symbol} failed: {exc}") from exc
                if raw is None or raw.empty:
                    raise SymbolNotFound(symbol, self.name)
                frame = normalise(raw, f"yfinance {symbol}")
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".csv.tmp")
                frame.to_csv(tmp, index_label="date")
                os.replace(tmp, path)
        return self.cache.daily(symbol)


def make_provider(name: str, *, bundled_dir: str, csv_dir: str, cache_dir: str, cache_ttl_seconds: int) -> PriceProvider:
    if name == "bundled":
        return BundledProvider(bundled_dir)
    if name == "csv":
        if not pathlib.Path(csv_dir).is_dir():
            raise SystemExit(f"SANDBOX_CSV_DIR {csv_dir!r} is not a directory")
        return CsvDirectoryProvider(csv_dir)
    if name == "yfinance":
        pathlib.Path(cache_dir).mkdir(parents=True, exist_ok=True)
        return YFinanceProvider(cache_dir, cache_ttl_seconds)
    raise SystemExit(f"SANDBOX_DATA_PROVIDER must be bundled, csv or yfinance, not {name!r}")
