"""An in-memory mirror of the Qdrant collection that answers mem0's searches.

Why: embedded (local-mode) Qdrant evaluates payload filters in Python, point
by point, over the whole collection. With 10,000 memories a search scoped to
one user spent ~70 ms in that filter mask (profiled) and the vector maths took
~1 ms. Qdrant stays the durable store and every write still goes to it
first; this mirror keeps the vectors (normalised, float32) and payloads in
numpy/dicts with an inverted index over payload values (user_id included),
and answers ``search`` for the filter shapes
the service sends (user_id plus exact-match / any-of metadata filters) with
the same cosine scores. Any other filter shape is passed through to Qdrant.

Used by wrapping mem0's vector store after ``Memory.from_config``:
``memory.vector_store = MirroredVectorStore(memory.vector_store)``. Not
thread-safe: the service serialises store calls (StoreRunner).
Memory cost: 1.5 KB per memory for the vector, plus the payload.
"""
from __future__ import annotations

import dataclasses
import heapq
from typing import Any, Iterable

import numpy as np

from services.memory.records import parse_time

_SIMPLE = (str, int, bool)


@dataclasses.dataclass(slots=True)
class Hit:
    """A search hit with the attributes mem0 reads from Qdrant's ScoredPoint
    (building 60 pydantic ScoredPoints per search cost more than the search)."""
    id: str
    score: float
    payload: dict[str, Any]


# Payload keys never filtered on (mem0's text, hashes and times): not indexed.
_NOT_INDEXED = frozenset({"data", "hash", "text_lemmatized", "created_at", "updated_at"})
_MAX_INDEXED_TEXT = 512


def _term(value: Any) -> tuple[bool, Any]:
    """Index term: True and 1 are different values to Qdrant, equal to Python."""
    return (isinstance(value, bool), value)


def simple_filters(filters: dict[str, Any] | None) -> bool:
    """Only top-level exact-match and list (any-of) conditions: what the mirror answers."""
    for key, value in (filters or {}).items():
        if key in ("AND", "OR", "NOT", "$and", "$or", "$not") or "." in key:
            return False
        values = value if isinstance(value, list) else [value]
        if not values or value == "*" or not all(
                isinstance(v, _SIMPLE) and not (isinstance(v, str) and len(v) > _MAX_INDEXED_TEXT) for v in values):
            return False
    return True


class MirroredVectorStore:
    def __init__(self, inner, page: int = 1000):
        self.inner = inner
        self.dims = inner.embedding_model_dims
        self._vectors = np.zeros((0, self.dims), dtype=np.float32)
        self._ids: list[str | None] = []
        self._payloads: list[dict[str, Any] | None] = []
        self._row: dict[str, int] = {}
        self._free: list[int] = []
        # inverted index: key -> (is_bool, value) -> rows; user_id is one of the keys
        self._inverted: dict[str, dict[tuple[bool, Any], set[int]]] = {}
        self._user_rows: dict[str, np.ndarray] = {}  # cache of sorted rows per user
        self._load(page)

    # ---- mirror maintenance ----------------------------------------------
    def _load(self, page: int) -> None:
        offset = None
        while True:
            points, offset = self.inner.client.scroll(
                collection_name=self.inner.collection_name, limit=page, offset=offset,
                with_payload=True, with_vectors=True,
            )
            for p in points:
                vector = p.vector.get("") if isinstance(p.vector, dict) else p.vector
                self._put(str(p.id), vector, p.payload or {})
            if offset is None:
                return

    def __len__(self) -> int:
        return len(self._row)

    def _grow(self) -> int:
        if self._free:
            return self._free.pop()
        row = len(self._ids)
        if row >= self._vectors.shape[0]:
            bigger = np.zeros((max(1024, 2 * self._vectors.shape[0]), self.dims), dtype=np.float32)
            bigger[: self._vectors.shape[0]] = self._vectors
            self._vectors = bigger
        self._ids.append(None)
        self._payloads.append(None)
        return row

    @staticmethod
    def _normalised(vector) -> np.ndarray:
        v = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else v

    def _index(self, row: int, payload: dict[str, Any], add: bool) -> None:
        for key, value in payload.items():
            if key in _NOT_INDEXED:
                continue
            for item in (value if isinstance(value, list) else [value]):
                if not isinstance(item, _SIMPLE) or (isinstance(item, str) and len(item) > _MAX_INDEXED_TEXT):
                    continue
                rows = self._inverted.setdefault(key, {}).setdefault(_term(item), set())
                (rows.add if add else rows.discard)(row)
        if "user_id" in payload:
            self._user_rows.pop(str(payload["user_id"]), None)

    def _put(self, memory_id: str, vector, payload: dict[str, Any]) -> None:
        row = self._row.get(memory_id)
        if row is None:
            row = self._grow()
            self._row[memory_id] = row
            self._ids[row] = memory_id
        else:
            self._index(row, self._payloads[row] or {}, add=False)
        if vector is not None:
            self._vectors[row] = self._normalised(vector)
        self._payloads[row] = dict(payload)
        self._index(row, payload, add=True)

    def _remove(self, memory_id: str) -> None:
        row = self._row.pop(memory_id, None)
        if row is None:
            return
        self._index(row, self._payloads[row] or {}, add=False)
        self._ids[row] = None
        self._payloads[row] = None
        self._vectors[row] = 0.0
        self._free.append(row)

    # ---- reads answered by the mirror ------------------------------------
    def _rows_matching(self, key: str, wanted: Any) -> set[int]:
        index = self._inverted.get(key, {})
        options = wanted if isinstance(wanted, list) else [wanted]
        rows: set[int] = set()
        for option in options:
            rows |= index.get(_term(option), set())
        return rows

    def _candidate_rows(self, filters: dict[str, Any]) -> np.ndarray:
        """Sorted rows matching simple ``filters`` (exact match / any-of, with
        Qdrant's array semantics: an array payload matches if an element does)."""
        user = filters.get("user_id")
        rest = {k: v for k, v in filters.items() if k != "user_id"}
        if user is not None and not isinstance(user, list):
            rows = self._user_rows.get(str(user))
            if rows is None:
                rows = np.fromiter(sorted(self._rows_matching("user_id", str(user))), dtype=np.int64)
                self._user_rows[str(user)] = rows
            if not rest:
                return rows
            selected = set(rows.tolist())
        elif user is not None:
            selected = self._rows_matching("user_id", user)
        else:
            selected = set(self._row.values())
        for key, wanted in sorted(rest.items(), key=lambda kv: len(self._rows_matching(*kv))):
            if not selected:
                break
            selected &= self._rows_matching(key, wanted)
        return np.fromiter(sorted(selected), dtype=np.int64)

    def select_page(self, filters: dict[str, Any], after: tuple | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """(id, payload) of the first ``limit`` matching points after ``after`` in (created_at, id) order.

        Only the sort keys of the matching rows are read; payloads are copied for the page alone."""
        keys = ((parse_time(str((self._payloads[r] or {}).get("created_at") or "")), self._ids[r], r)
                for r in self._candidate_rows(filters).tolist())
        if after is not None:
            keys = (k for k in keys if k[:2] > after)
        return [(memory_id, dict(self._payloads[r])) for _, memory_id, r in heapq.nsmallest(limit, keys)]

    def select(self, filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(id, payload) of every point matching simple ``filters``."""
        return [(self._ids[r], dict(self._payloads[r])) for r in self._candidate_rows(filters)]

    def search(self, query: str, vectors: list, top_k: int = 5, filters: dict | None = None) -> list:
        if not simple_filters(filters):
            return self.inner.search(query=query, vectors=vectors, top_k=top_k, filters=filters)
        rows = self._candidate_rows(filters or {})
        if rows.size == 0 or top_k <= 0:
            return []
        # all rows at once (one BLAS call over contiguous memory), then pick:
        # cheaper than copying the candidate rows out first
        scores = (self._vectors[: len(self._ids)] @ self._normalised(vectors))[rows]
        k = min(top_k, rows.size)
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [Hit(self._ids[rows[i]], float(scores[i]), dict(self._payloads[rows[i]])) for i in best]

    # ---- writes: Qdrant first, then the mirror ---------------------------
    def insert(self, vectors: Iterable, payloads=None, ids=None):
        vectors = list(vectors)
        self.inner.insert(vectors=vectors, payloads=payloads, ids=ids)
        for i, vector in enumerate(vectors):
            self._put(str(ids[i]), vector, (payloads or [{}] * len(vectors))[i] or {})

    def update(self, vector_id, vector=None, payload=None):
        self.inner.update(vector_id=vector_id, vector=vector, payload=payload)
        memory_id = str(vector_id)
        row = self._row.get(memory_id)
        if vector is not None and payload is not None:
            self._put(memory_id, vector, payload)  # full upsert: payload replaced
        elif row is not None:
            merged = {**(self._payloads[row] or {}), **(payload or {})}  # set_payload merges
            self._put(memory_id, vector, merged)
        else:  # a partial update of a point the mirror lacks: reload it
            point = self.inner.client.retrieve(self.inner.collection_name, ids=[vector_id], with_payload=True,
                                               with_vectors=True)
            if point:
                v = point[0].vector.get("") if isinstance(point[0].vector, dict) else point[0].vector
                self._put(memory_id, v, point[0].payload or {})

    def delete(self, vector_id):
        self.inner.delete(vector_id=vector_id)
        self._remove(str(vector_id))

    def reset(self):
        self.inner.reset()
        for memory_id in list(self._row):
            self._remove(memory_id)

    def delete_col(self):
        self.inner.delete_col()
        for memory_id in list(self._row):
            self._remove(memory_id)

    def __getattr__(self, name):  # client, collection_name, get, list, keyword_search, ...
        return getattr(self.inner, name)
