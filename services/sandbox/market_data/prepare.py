"""Slicing the provider's history to a run's window, and the files jailed code reads."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import pathlib

import pandas as pd

import grpc

from services.common import errors
from services.common.backtest_params import TIMEFRAMES
from services.sandbox.market_data.providers import DataUnavailable, PriceProvider, SymbolNotFound
from stratexec_runtime.data import PRICE_COLUMNS, resample, resolve_symbol

# Calendar days a window may start before the first bar or end after the last
# (weekends and holidays), before it counts as out of range.
EDGE_TOLERANCE_DAYS = 7


@dataclasses.dataclass(frozen=True)
class DataRequest:
    symbols: tuple[str, ...]  # traded symbols and the benchmark, as given
    start_date: str
    end_date: str
    timeframe: str = "1d"
    prices: str = "raw"  # or "total_return", which needs adj_close


@dataclasses.dataclass(frozen=True)
class DataSourceInfo:
    provider: str
    symbol: str
    first_time: str
    last_time: str
    bars: int
    sha256: str
    warmup_bars: int = 0


@dataclasses.dataclass(frozen=True)
class PreparedData:
    files: dict[str, bytes]  # file name -> content
    sources: list[DataSourceInfo]

    def write(self, directory: str | os.PathLike) -> None:
        """Write the files read-only into ``directory`` (which must exist)."""
        directory = pathlib.Path(directory)
        for name, content in self.files.items():
            path = directory / name
            path.write_bytes(content)
            os.chmod(path, 0o444)


def _date(field: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise errors.invalid_argument(
            f"{field} must be a date YYYY-MM-DD, got {value!r}", [(f"params.{field}", "expected YYYY-MM-DD")]
        ) from None


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


def prepare(provider: PriceProvider, request: DataRequest) -> PreparedData:
    """Slice each symbol to [start, end]; raises ApiError NOT_FOUND / INVALID_ARGUMENT / UNAVAILABLE."""
    start, end = _date("start_date", request.start_date), _date("end_date", request.end_date)
    if start > end:
        raise errors.invalid_argument(
            f"start_date {start} is after end_date {end}", [("params.start_date", "must not be after end_date")]
        )
    if request.timeframe not in TIMEFRAMES:
        raise errors.invalid_argument(
            f"timeframe {request.timeframe!r} is not available from provider {provider.name!r}: use {' or '.join(TIMEFRAMES)}",
            [("params.timeframe", f"one of {', '.join(TIMEFRAMES)}")],
        )
    files: dict[str, bytes] = {}
    sources: list[DataSourceInfo] = []
    for symbol in dict.fromkeys(resolve_symbol(s) for s in request.symbols if s.strip()):
        try:
            history = provider.daily(symbol)
        except SymbolNotFound as exc:
            raise errors.ApiError(
                grpc.StatusCode.NOT_FOUND, str(exc), reason="SYMBOL_NOT_FOUND",
                metadata={"symbol": symbol, "provider": provider.name},
            ) from None
        except DataUnavailable as exc:
            raise errors.ApiError(
                grpc.StatusCode.UNAVAILABLE, str(exc), reason="DATA_UNAVAILABLE",
                metadata={"symbol": symbol, "provider": provider.name},
            ) from None
        if history.empty:
            raise errors.ApiError(grpc.StatusCode.NOT_FOUND, f"provider {provider.name!r} has no bars for {symbol!r}",
                                  reason="SYMBOL_NOT_FOUND", metadata={"symbol": symbol})
        if request.prices == "total_return" and ("adj_close" not in history or history["adj_close"].isna().all()):
            raise errors.invalid_argument(
                f"prices=total_return needs adjusted closes, and provider {provider.name!r} has none for {symbol}",
                [("params.prices", f"{symbol} has no adj_close: use raw")], reason="NO_ADJUSTED_PRICES", symbol=symbol)
        first, last = history.index[0], history.index[-1]
        available = f"{symbol} has data from {_iso(first)} to {_iso(last)} (provider {provider.name})"
        tolerance = pd.Timedelta(days=EDGE_TOLERANCE_DAYS)
        window = history.loc[pd.Timestamp(start) : pd.Timestamp(end) + pd.Timedelta(hours=23, minutes=59, seconds=59)]
        if window.empty or pd.Timestamp(start) < first - tolerance or pd.Timestamp(end) > last + tolerance:
            raise errors.invalid_argument(
                f"no complete data for {start}..{end}: {available}",
                [("params.start_date", available), ("params.end_date", available)],
                reason="DATE_RANGE_UNAVAILABLE",
                symbol=symbol, available_start=_iso(first), available_end=_iso(last),
            )
        # All the history before start_date goes into the file, so indicators are warm at the first traded
        # bar: the script reads the warm-up it needs (PARAMS["warmup_bars"]), exactly as it does from the
        # full CSV by hand. Nothing after end_date is ever included.
        warmup = history.loc[: pd.Timestamp(start) - pd.Timedelta(microseconds=1)]
        content = pd.concat([warmup, window]).to_csv(index_label="date", lineterminator="\n").encode()
        name = f"{symbol}.csv"
        files[name] = content
        sources.append(
            DataSourceInfo(
                provider=provider.origin(symbol), symbol=symbol, first_time=_iso(window.index[0]),
                last_time=_iso(window.index[-1]), sha256=hashlib.sha256(content).hexdigest(),
                bars=len(resample(window[PRICE_COLUMNS], request.timeframe)),  # at the run's timeframe, as warmup_bars
                warmup_bars=len(resample(warmup[PRICE_COLUMNS], request.timeframe)),
            )
        )
    if not sources:
        raise errors.invalid_argument("no symbols requested", [("params.symbols", "at least one symbol")])
    return PreparedData(files, sources)
