"""A memory as the service sees it, independent of the backend, and the
conversion from mem0's payloads and results."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

# Keys mem0 keeps in a point's payload for its own use; never user metadata.
CORE_PAYLOAD_KEYS = frozenset({
    "data", "hash", "created_at", "updated_at", "id", "text_lemmatized", "attributed_to",
    "user_id", "agent_id", "run_id", "actor_id", "role", "expiration_date",
})


@dataclasses.dataclass
class MemoryRecord:
    id: str
    user_id: str
    content: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str = ""
    score: float = 0.0

    def sort_key(self) -> tuple[dt.datetime, str]:
        return (parse_time(self.created_at), self.id)


def parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def user_metadata(payload: dict[str, Any]) -> dict[str, Any]:
    """The caller's metadata: everything but mem0's own keys. A key set to
    None was removed by a replacing update (see EmbeddedStore.replace)."""
    return {k: v for k, v in payload.items() if k not in CORE_PAYLOAD_KEYS and v is not None}


def from_payload(memory_id: Any, payload: dict[str, Any], score: float = 0.0) -> MemoryRecord:
    payload = payload or {}
    return MemoryRecord(
        id=str(memory_id),
        user_id=str(payload.get("user_id") or ""),
        content=str(payload.get("data") or ""),
        metadata=user_metadata(payload),
        created_at=str(payload.get("created_at") or ""),
        updated_at=str(payload.get("updated_at") or payload.get("created_at") or ""),
        score=float(score or 0.0),
    )


def from_mem0_result(item: dict[str, Any]) -> MemoryRecord:
    """A search result of mem0's Memory.search (id, memory, score, metadata, ...)."""
    return MemoryRecord(
        id=str(item.get("id")),
        user_id=str(item.get("user_id") or ""),
        content=str(item.get("memory") or ""),
        metadata={k: v for k, v in (item.get("metadata") or {}).items() if v is not None and k not in CORE_PAYLOAD_KEYS},
        created_at=str(item.get("created_at") or ""),
        updated_at=str(item.get("updated_at") or item.get("created_at") or ""),
        score=float(item.get("score") or 0.0),
    )
