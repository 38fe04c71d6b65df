"""De-duplication keys: one memory per (user_id, memory_key).

A memory whose metadata carries ``memory_key`` replaces the user's earlier
memory with the same key (same id and created_at, new content and metadata)
instead of being added twice. Callers may set the key themselves; for
strategy patterns the service derives it from the strategy and its params,
so the same strategy run again with the same params updates its pattern.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

STRATEGY_PATTERN = "strategy_pattern"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def strategy_pattern_key(strategy: Any, params: Any) -> str:
    digest = hashlib.sha256(canonical_json({"strategy": strategy, "params": params}).encode()).hexdigest()
    return f"{STRATEGY_PATTERN}:{digest[:32]}"


def memory_key(metadata: dict[str, Any]) -> str | None:
    """The de-duplication key for a new memory, or None to always add.

    - ``metadata.memory_key`` if given;
    - else, for ``kind == "strategy_pattern"`` with a ``strategy`` entry
      (the strategy schema or a signature of it): a hash of ``strategy`` and
      ``params`` (absent params count as {}), in canonical JSON.
    """
    if metadata.get("memory_key"):
        return str(metadata["memory_key"])
    if metadata.get("kind") == STRATEGY_PATTERN and "strategy" in metadata:
        return strategy_pattern_key(metadata["strategy"], metadata.get("params", {}))
    return None


def upsert(store, user_id: str, message: dict[str, str], metadata: dict[str, Any], key: str):
    """Replace the user's memory with this ``memory_key``, or add it, in either
    backend. Returns (memory, created). Atomic because StoreRunner serialises calls."""
    metadata = {**metadata, "memory_key": key}
    existing = store.find_by_key(user_id, key)
    if existing is not None:
        return store.replace(existing.id, message["content"], metadata), False
    return store.add(user_id, [message], metadata, infer=False)[0], True
