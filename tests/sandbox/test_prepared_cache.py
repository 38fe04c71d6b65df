"""The data of a window is prepared once: the submit-time check and the run
read the same slices; another window, an expired entry or an error prepare
again."""
from __future__ import annotations

import collections
import pathlib

import pytest

from services.common.errors import ApiError
from services.sandbox.market_data import BundledProvider, DataRequest, prepare
from services.sandbox.market_data.prepared_cache import PreparedCache

ROOT = pathlib.Path(__file__).resolve().parents[2]
WINDOW = DataRequest(("BTC-USD", "SPY"), "2024-01-01", "2024-06-30")


class CountingProvider(BundledProvider):
    """The bundled data, counting the histories read (one per symbol each time a window is prepared)."""

    def __init__(self):
        super().__init__(ROOT / "data" / "ohlcv")
        self.reads = collections.Counter()

    def daily(self, symbol):
        self.reads[symbol] += 1
        return super().daily(symbol)


def test_the_same_window_is_prepared_once_and_equals_a_fresh_preparation():
    provider = CountingProvider()
    cache = PreparedCache(provider)

    first, second = cache.get(WINDOW), cache.get(DataRequest(*WINDOW.__dict__.values()))

    assert second is first and dict(provider.reads) == {"BTC-USD": 1, "SPY": 1}
    assert (cache.hits, cache.misses) == (1, 1)
    assert first == prepare(BundledProvider(ROOT / "data" / "ohlcv"), WINDOW)  # the same files and provenance


def test_another_window_an_expired_entry_and_an_error_prepare_again():
    provider = CountingProvider()
    cache = PreparedCache(provider, entries=1, ttl_s=3600)
    cache.get(WINDOW)
    cache.get(DataRequest(("BTC-USD",), "2023-01-01", "2023-12-31"))  # evicts WINDOW (one entry)
    cache.get(WINDOW)
    assert provider.reads["BTC-USD"] == 3

    expired = PreparedCache(provider, ttl_s=0)
    expired.get(WINDOW)
    expired.get(WINDOW)
    assert expired.misses == 2

    with pytest.raises(ApiError):
        cache.get(DataRequest(("NOPE",), "2024-01-01", "2024-01-31"))
    with pytest.raises(ApiError):  # not remembered: asked again
        cache.get(DataRequest(("NOPE",), "2024-01-01", "2024-01-31"))
    assert provider.reads["NOPE"] == 2
