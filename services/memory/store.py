"""The mem0 backend, embedded: mem0 open source over local Qdrant on disk.

Everything lives under the service's data directory (never mem0's /tmp or
~/.mem0 defaults):

    <data_dir>/memory.lock   exclusive lock: one service process per directory
    <data_dir>/qdrant/       embedded Qdrant (itself locks the directory)
    <data_dir>/history.db    mem0's history of changes (SQLite)
    <data_dir>/mem0/         MEM0_DIR, mem0's own config file

mem0 calls block (embedding on CPU, Qdrant on disk) and embedded Qdrant
is not safe for concurrent use, so ``StoreRunner`` runs every call on one
worker thread, behind one lock.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import logging
import os
import pathlib
import threading
import time
from typing import Any, Callable, TypeVar

from services.common.env import quiet_libraries
from services.memory.config import MemoryConfig
from services.memory.glossary import GlossaryEmbedder
from services.memory.index import MirroredVectorStore
from services.memory.records import MemoryRecord, from_mem0_result, from_payload

T = TypeVar("T")
logger = logging.getLogger("memory.store")


class StoreBusy(RuntimeError):
    """The data directory is owned by another process."""


class StoreUnavailable(RuntimeError):
    """The store is not loaded yet (model loading) or failed to load."""


class LlmNotConfigured(RuntimeError):
    """infer=True asked for, but no language model is configured."""


class DirectoryLock:
    """An exclusive, non-blocking flock on <data_dir>/memory.lock, held for the
    life of the process (the kernel drops it when the process dies)."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self._fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise StoreBusy(
                f"memory data directory {self.path.parent} is in use by another memory service process "
                f"(pid {owner}); embedded Qdrant allows one process per directory: stop that process "
                f"or set MEMORY_DATA_DIR to another directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def mem0_config(config: MemoryConfig, model_path: str) -> dict[str, Any]:
    """The Memory.from_config dictionary (measured to work offline)."""
    if config.llm_enabled:
        llm = {"provider": config.llm_provider, "config": {"api_key": config.llm_api_key, "model": config.llm_model}}
    else:
        # mem0 builds an LLM client at construction (default OpenAI wants a key);
        # a placeholder Anthropic entry constructs offline and add(infer=False)
        # never calls it.
        llm = {"provider": "anthropic", "config": {"api_key": "offline-placeholder", "model": config.llm_model}}
    return {
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "collection_name": config.collection,
                "path": str(config.qdrant_path),
                "embedding_model_dims": 384,
                "on_disk": True,
            },
        },
        "embedder": {"provider": "huggingface", "config": {"model": model_path, "embedding_dims": 384,
                                                       "model_kwargs": {"threads": config.embed_threads}}},
        "llm": llm,
        "history_db_path": str(config.history_db_path),
    }


class EmbeddedStore:
    """Synchronous operations on mem0's ``Memory``. Not thread-safe: use through StoreRunner."""

    backend = "embedded"

    def __init__(self, config: MemoryConfig):
        self.config = config
        self.memory = None  # mem0.Memory once load() ran

    # ---- life cycle -------------------------------------------------------
    def load(self) -> None:
        """Import mem0 and load the embedder (ONNX Runtime, embedder.py): ~3 s on CPU."""
        quiet_libraries()
        os.environ.setdefault("MEM0_DIR", str(self.config.data_dir / "mem0"))
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        from mem0 import Memory

        from services.memory.embedder import model_dir, register_with_mem0

        register_with_mem0()

        started = time.monotonic()
        try:
            self.memory = Memory.from_config(mem0_config(self.config, str(model_dir())))
        except RuntimeError as exc:
            if "already accessed by another instance" in str(exc):
                raise StoreBusy(
                    f"embedded Qdrant at {self.config.qdrant_path} is open in another process; "
                    f"one process per data directory (set MEMORY_DATA_DIR to another directory)"
                ) from exc
            raise
        # Tickers and indicator abbreviations are expanded before embedding
        # (glossary.py); searches are answered from an in-memory mirror of
        # the collection, Qdrant staying the durable store (index.py).
        self.memory.embedding_model = GlossaryEmbedder(self.memory.embedding_model)
        self.memory.vector_store = MirroredVectorStore(self.memory.vector_store)
        # mem0 tries spaCy (lemmas, entities) and fastembed (BM25) lazily and
        # warns on every process start that they are absent: search is then
        # semantic only, which is what we use and measured. One search on an
        # empty scope warms every lazy path before the first request.
        for name in ("mem0.utils.spacy_models", "mem0.vector_stores.qdrant"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.memory.search("warm up", filters={"user_id": "__warm_up__"}, top_k=1)
        logger.info("mem0 loaded in %.1fs: %d memories, semantic search (BM25 and entity boosts off: "
                    "fastembed and spaCy are not installed)", time.monotonic() - started, len(self.memory.vector_store))

    def close(self) -> None:
        if self.memory is not None:
            try:
                self.memory.vector_store.client.close()
            except Exception:  # closing is best effort at shutdown
                logger.debug("qdrant close failed", exc_info=True)
            try:
                self.memory.db.close()
            except Exception:
                logger.debug("history db close failed", exc_info=True)
            self.memory = None

    def _mem(self):
        if self.memory is None:
            raise StoreUnavailable("the memory store is still loading")
        return self.memory

    # ---- reads ------------------------------------------------------------
    def get(self, memory_id: str) -> MemoryRecord | None:
        point = self._mem().vector_store.get(vector_id=memory_id)
        return from_payload(point.id, point.payload) if point else None

    def search(self, query: str, user_id: str, filters: dict[str, Any], limit: int, threshold: float) -> list[MemoryRecord]:
        result = self._mem().search(query, top_k=limit, filters={**filters, "user_id": user_id}, threshold=threshold)
        return [from_mem0_result(item) for item in result.get("results", [])]

    def _select(self, must: dict[str, Any]) -> list[MemoryRecord]:
        return [from_payload(i, payload) for i, payload in self._mem().vector_store.select(must)]

    def list_page(self, user_id: str, after: tuple | None, limit: int) -> list[MemoryRecord]:
        """Up to ``limit`` memories of a user after the (created_at, id) key ``after``, oldest first
        (ties by id): the order of ListMemories. Records are built for the page only."""
        return [from_payload(i, p) for i, p in self._mem().vector_store.select_page({"user_id": user_id}, after, limit)]

    def find_by_key(self, user_id: str, memory_key: str) -> MemoryRecord | None:
        found = self._select({"user_id": user_id, "memory_key": memory_key})
        return min(found, key=MemoryRecord.sort_key) if found else None

    def count(self) -> int:
        return len(self._mem().vector_store)

    # ---- writes -----------------------------------------------------------
    def add(self, user_id: str, messages: list[dict[str, str]], metadata: dict[str, Any], infer: bool) -> list[MemoryRecord]:
        memory = self._mem()
        if infer and not self.config.llm_enabled:
            raise LlmNotConfigured("infer=True needs a language model: set ANTHROPIC_API_KEY (or MEMORY_LLM_API_KEY)")
        result = memory.add(messages, user_id=user_id, metadata=metadata or None, infer=infer)
        records = []
        for item in result.get("results", []):
            if item.get("event") == "DELETE":
                continue
            stored = self.get(str(item["id"]))
            if stored is not None:
                records.append(stored)
        return records

    def replace(self, memory_id: str, content: str, metadata: dict[str, Any]) -> MemoryRecord:
        """New content and metadata for an existing memory; id, owner and
        created_at stay. mem0's update merges metadata, so keys that the new
        metadata drops are set to None (hidden on read)."""
        memory = self._mem()
        existing = self.get(memory_id)
        if existing is None:
            raise KeyError(memory_id)
        merged: dict[str, Any] = {k: None for k in existing.metadata}
        merged.update(metadata)
        memory.update(memory_id, text=content, metadata=merged)
        updated = self.get(memory_id)
        assert updated is not None
        return updated

    def bulk_add(self, user_id: str, items: list[tuple[str, dict[str, Any]]], batch: int = 256,
                 vectors: list[list[float]] | None = None) -> list[str]:
        """Add many (content, metadata) memories at once, verbatim (infer=False):
        batched embedding (or the given ``vectors``), one Qdrant upsert and one
        history transaction per batch. Writes the same payload and history
        rows as mem0's add(infer=False); for imports and the benchmark, not
        on the request path."""
        import datetime as dt
        import hashlib
        import uuid

        from mem0.utils.lemmatization import lemmatize_for_bm25

        memory = self._mem()
        ids: list[str] = []
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            if vectors is not None:
                chunk_vectors = vectors[start:start + batch]
            else:
                chunk_vectors = memory.embedding_model.embed_batch([content for content, _ in chunk], "add")
            chunk_ids, payloads = [], []
            for content, metadata in chunk:
                now = dt.datetime.now(dt.timezone.utc).isoformat()
                payloads.append({
                    **metadata, "user_id": user_id, "role": "user", "data": content,
                    "hash": hashlib.md5(content.encode()).hexdigest(), "created_at": now, "updated_at": now,
                    "text_lemmatized": lemmatize_for_bm25(content),
                })
                chunk_ids.append(str(uuid.uuid4()))
            memory.vector_store.insert(vectors=chunk_vectors, ids=chunk_ids, payloads=payloads)
            rows = [(str(uuid.uuid4()), memory_id, None, payload["data"], "ADD", payload["created_at"],
                     payload["updated_at"], 0, None, "user") for memory_id, payload in zip(chunk_ids, payloads)]
            with memory.db._lock, memory.db.connection:  # one transaction per batch
                memory.db.connection.executemany(
                    "INSERT INTO history (id, memory_id, old_memory, new_memory, event, created_at, updated_at,"
                    " is_deleted, actor_id, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            ids.extend(chunk_ids)
        return ids

    def delete(self, memory_id: str) -> None:
        self._mem().delete(memory_id)


class StoreRunner:
    """Runs blocking store calls on one worker thread, one at a time."""

    def __init__(self, store):
        self.store = store
        self.ready = False
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mem0")

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        def locked() -> T:
            with self._lock:
                return fn(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._executor, locked)

    async def load(self) -> None:
        await self.run(self.store.load)
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self.run(self.store.close)
        self._executor.shutdown(wait=True)
