"""The hosted mem0 platform backend, selected by MEM0_API_KEY.

Same operations as EmbeddedStore, on mem0's ``MemoryClient`` (HTTPS to the
platform; fact extraction happens there, so infer=True needs no local LLM).
NOT exercised by the offline test suite: there is no network here. Metadata
filters are sent as the platform's {"AND": [...]} filter with a
``metadata`` clause; check against the platform's current API before relying
on it in production.
"""
from __future__ import annotations

from typing import Any

from services.common.env import quiet_libraries
from services.memory.config import MemoryConfig
from services.memory.records import MemoryRecord, from_mem0_result
from services.memory.store import StoreUnavailable


class PlatformStore:
    backend = "platform"

    def __init__(self, config: MemoryConfig):
        self.config = config
        self.client = None

    def load(self) -> None:
        quiet_libraries()
        from mem0 import MemoryClient

        self.client = MemoryClient(api_key=self.config.mem0_api_key)

    def close(self) -> None:
        self.client = None

    def _c(self):
        if self.client is None:
            raise StoreUnavailable("the mem0 platform client is not ready")
        return self.client

    @staticmethod
    def _filters(user_id: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [{"user_id": user_id}]
        if metadata:
            clauses.append({"metadata": metadata})
        return {"AND": clauses}

    @staticmethod
    def _results(response: Any) -> list[dict[str, Any]]:
        if isinstance(response, dict):
            return list(response.get("results") or [])
        return list(response or [])

    def get(self, memory_id: str) -> MemoryRecord | None:
        try:
            item = self._c().get(memory_id)
        except Exception as exc:  # the client raises MemoryNotFoundError and others
            if "not found" in str(exc).lower():
                return None
            raise
        return from_mem0_result(item) if item else None

    def search(self, query: str, user_id: str, filters: dict[str, Any], limit: int, threshold: float) -> list[MemoryRecord]:
        response = self._c().search(query, filters=self._filters(user_id, filters), top_k=limit, threshold=threshold)
        return [from_mem0_result(x) for x in self._results(response)]

    def _all(self, user_id: str, metadata: dict[str, Any] | None = None) -> list[MemoryRecord]:
        records, page = [], 1
        while True:
            response = self._c().get_all(filters=self._filters(user_id, metadata), page=page, page_size=100)
            records.extend(from_mem0_result(x) for x in self._results(response))
            if not (isinstance(response, dict) and response.get("next")):
                return records
            page += 1

    def list_page(self, user_id: str, after: tuple | None, limit: int) -> list[MemoryRecord]:
        """The hosted API pages in its own order, not by (created_at, id): this backend reads the
        user's memories to cut one page (the embedded store reads one page only)."""
        ordered = sorted(self._all(user_id), key=MemoryRecord.sort_key)
        return [r for r in ordered if after is None or r.sort_key() > after][:limit]

    def find_by_key(self, user_id: str, memory_key: str) -> MemoryRecord | None:
        found = [r for r in self._all(user_id, {"memory_key": memory_key}) if r.metadata.get("memory_key") == memory_key]
        return min(found, key=MemoryRecord.sort_key) if found else None

    def add(self, user_id: str, messages: list[dict[str, str]], metadata: dict[str, Any], infer: bool) -> list[MemoryRecord]:
        response = self._c().add(messages, filters={"user_id": user_id}, metadata=metadata or None, infer=infer)
        records = []
        for item in self._results(response):
            if item.get("id") and item.get("event") != "DELETE":
                stored = self.get(str(item["id"]))
                if stored is not None:
                    records.append(stored)
        return records

    def replace(self, memory_id: str, content: str, metadata: dict[str, Any]) -> MemoryRecord:
        self._c().update(memory_id, text=content, metadata=metadata)
        record = self.get(memory_id)
        if record is None:
            raise KeyError(memory_id)
        return record

    def delete(self, memory_id: str) -> None:
        self._c().delete(memory_id)
