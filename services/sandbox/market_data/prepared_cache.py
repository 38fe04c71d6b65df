"""The data of a window, prepared once: the orchestrator's submit-time check
(DescribeData) and the run that follows (ExecuteCode) ask for the same
slices, so the second one reads them from here instead of slicing and
writing the CSVs again.

A small LRU keyed by the data request, each entry good for ``ttl_s`` (the
provider's own freshness: a remote provider's history may grow). Errors are
not cached: a symbol that was missing may be there on the next call."""
from __future__ import annotations

import collections
import threading
import time

from services.sandbox.market_data.prepare import DataRequest, PreparedData, prepare
from services.sandbox.market_data.providers import PriceProvider


class PreparedCache:
    def __init__(self, provider: PriceProvider, *, entries: int = 64, ttl_s: float = 300.0):
        self.provider = provider
        self.entries = entries
        self.ttl_s = ttl_s
        self.hits = self.misses = 0
        self._items: collections.OrderedDict[DataRequest, tuple[float, PreparedData]] = collections.OrderedDict()
        self._lock = threading.Lock()  # remote providers prepare in worker threads

    def get(self, request: DataRequest) -> PreparedData:
        now = time.monotonic()
        with self._lock:
            found = self._items.get(request)
            if found is not None and now - found[0] < self.ttl_s:
                self._items.move_to_end(request)
                self.hits += 1
                return found[1]
        prepared = prepare(self.provider, request)  # outside the lock: a download must not block other requests
        with self._lock:
            self.misses += 1
            self._items[request] = (now, prepared)
            self._items.move_to_end(request)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
        return prepared
