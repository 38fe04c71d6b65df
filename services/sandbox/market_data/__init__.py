"""Market data for runs: providers behind one interface, and preparation of
the per-run price files that jailed code reads.

    provider = make_provider(config)            # bundled | csv | yfinance
    prepared = prepare(provider, request)       # slices, hashes, records provenance
    prepared.write(run_dir.data)                # <SYMBOL>.csv files, read-only
"""
from services.sandbox.market_data.prepare import DataRequest, PreparedData, prepare
from services.sandbox.market_data.providers import (
    BundledProvider,
    CsvDirectoryProvider,
    DataUnavailable,
    PriceProvider,
    SymbolNotFound,
    YFinanceProvider,
    make_provider,
)

__all__ = [
    "BundledProvider",
    "CsvDirectoryProvider",
    "DataRequest",
    "DataUnavailable",
    "PreparedData",
    "PriceProvider",
    "SymbolNotFound",
    "YFinanceProvider",
    "make_provider",
    "prepare",
]
