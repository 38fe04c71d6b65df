"""gRPC server of stratexec.memory.v1.MemoryService.

Scoping (see docs/memory.md): every memory belongs to one user. A search by
user X returns X's memories; it also covers user "system" (the code
templates) exactly when its filters ask for templates, i.e. ``kind`` is
"code_template" or a list containing it. Listing and deleting only ever see
the caller's own memories; another user's memory id is NOT_FOUND.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from google.protobuf import struct_pb2

from services.common import errors, logs
from services.common.env import quiet_libraries
from services.common.server import ServerSpec, serve
from services.memory import keys, paging, templates, validation
from services.memory.config import SERVICE_NAME, SYSTEM_USER, MemoryConfig
from services.memory.records import MemoryRecord
from services.memory.store import (DirectoryLock, EmbeddedStore, LlmNotConfigured, StoreBusy, StoreRunner,
                                   StoreUnavailable)
from stratexec.memory.v1 import memory_pb2, memory_pb2_grpc

TEMPLATE_KIND = "code_template"


def to_proto(record: MemoryRecord) -> memory_pb2.Memory:
    metadata = struct_pb2.Struct()
    if record.metadata:
        metadata.update(record.metadata)
    return memory_pb2.Memory(
        id=record.id,
        user_id=record.user_id,
        content=record.content,
        metadata=metadata,
        score=record.score,
        created_at=record.created_at,
    )


def includes_templates(filters: dict[str, Any]) -> bool:
    """Does a search ask for code templates (and so also cover user "system")?"""
    kind = filters.get("kind")
    return kind == TEMPLATE_KIND or (isinstance(kind, list) and TEMPLATE_KIND in kind)


def search_scope(user_id: str, filters: dict[str, Any]) -> list[str]:
    if user_id != SYSTEM_USER and includes_templates(filters):
        return [user_id, SYSTEM_USER]
    return [user_id]


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, config: MemoryConfig, runner: StoreRunner, logger: logging.Logger):
        self.config = config
        self.runner = runner
        self.store = runner.store
        self.logger = logger

    async def _run(self, fn, *args, **kwargs):
        if not self.runner.ready:
            raise errors.ApiError(grpc.StatusCode.UNAVAILABLE, "the memory store is still loading; retry shortly",
                                  reason="MEMORY_LOADING")
        try:
            return await self.runner.run(fn, *args, **kwargs)
        except StoreUnavailable as exc:
            raise errors.ApiError(grpc.StatusCode.UNAVAILABLE, str(exc), reason="MEMORY_UNAVAILABLE") from exc
        except LlmNotConfigured as exc:
            raise errors.failed_precondition(str(exc), reason="LLM_NOT_CONFIGURED") from exc

    def _log(self, msg: str, started: float, **fields) -> None:
        logs.log(self.logger, logging.INFO, msg, ms=round((time.monotonic() - started) * 1000, 1), **fields)

    async def AddMemory(self, request, context):
        started = time.monotonic()
        messages, metadata = validation.check_add(request, self.config)
        key = keys.memory_key(metadata)
        if key is not None and (len(messages) != 1 or request.infer):
            violations = []
            if len(messages) != 1:
                violations.append(("messages", "exactly one message when metadata names a memory_key or a strategy pattern"))
            if request.infer:
                violations.append(("infer", "must be false for a de-duplicated memory"))
            raise errors.invalid_argument(
                "invalid AddMemory request: a de-duplicated memory (memory_key, or a strategy pattern) is one message with infer=false",
                violations=violations,
            )
        if request.infer and not self.config.llm_enabled and self.store.backend == "embedded":
            raise errors.failed_precondition(
                "infer=true needs a language model for fact extraction: set ANTHROPIC_API_KEY on the memory service",
                reason="LLM_NOT_CONFIGURED")
        if not request.infer:
            # mem0 skips system-role messages when it stores them verbatim;
            # here every message given is stored, so they go in as user text.
            messages = [{**m, "role": "user"} if m["role"] == "system" else m for m in messages]
        if key is not None:
            record, created = await self._run(keys.upsert, self.store, request.user_id, messages[0], metadata, key)
            records = [record]
            self._log("memory stored", started, user_id=request.user_id, memory_id=record.id,
                      event="ADD" if created else "UPDATE", memory_key=key)
        else:
            records = await self._run(self.store.add, request.user_id, messages, metadata, request.infer)
            self._log("memory stored", started, user_id=request.user_id, count=len(records), event="ADD")
        return memory_pb2.AddMemoryResponse(memories=[to_proto(r) for r in records])

    async def SearchMemories(self, request, context):
        started = time.monotonic()
        query, filters, limit, threshold = validation.check_search(request, self.config)
        found: list[MemoryRecord] = []
        for user_id in search_scope(request.user_id, filters):
            found.extend(await self._run(self.store.search, query, user_id, filters, limit, threshold))
        found.sort(key=lambda r: (-r.score, r.id))
        found = found[:limit]
        self._log("memories searched", started, user_id=request.user_id, results=len(found))
        return memory_pb2.SearchMemoriesResponse(memories=[to_proto(r) for r in found])

    async def ListMemories(self, request, context):
        page_size = validation.check_list(request, self.config)
        after = paging.after_key(request.user_id, request.page_token)  # a bad token fails before any work
        records = await self._run(self.store.list_page, request.user_id, after, page_size + 1)
        chunk, token = paging.page(records, request.user_id, page_size)
        return memory_pb2.ListMemoriesResponse(memories=[to_proto(r) for r in chunk], next_page_token=token)

    async def GetMemory(self, request, context):
        validation.check_get(request)
        record = await self._run(self.store.get, request.memory_id)
        if record is None or record.user_id not in (request.user_id, SYSTEM_USER):
            raise errors.not_found("memory", request.memory_id)
        return memory_pb2.GetMemoryResponse(memory=to_proto(record))

    async def UpdateMemory(self, request, context):
        started = time.monotonic()
        paths, content, metadata = validation.check_update(request, self.config)
        store = self.store

        def update_own() -> MemoryRecord | None:
            record = store.get(request.memory_id)
            if record is None or record.user_id != request.user_id:
                return None
            new_metadata = metadata if metadata is not None else record.metadata
            key = new_metadata.get("memory_key")
            if key and key != record.metadata.get("memory_key"):
                holder = store.find_by_key(request.user_id, str(key))
                if holder is not None and holder.id != record.id:
                    raise errors.ApiError(grpc.StatusCode.ALREADY_EXISTS, f"memory {holder.id} already has memory_key {key!r}",
                                          reason="MEMORY_KEY_TAKEN", metadata={"memory_id": holder.id})
            return store.replace(record.id, content if "content" in paths else record.content, new_metadata)

        updated = await self._run(update_own)
        if updated is None:
            raise errors.not_found("memory", request.memory_id)
        self._log("memory updated", started, user_id=request.user_id, memory_id=request.memory_id, fields=sorted(paths))
        return memory_pb2.UpdateMemoryResponse(memory=to_proto(updated))

    async def DeleteMemory(self, request, context):
        started = time.monotonic()
        validation.check_delete(request)
        store = self.store

        def delete_own() -> bool:
            record = store.get(request.memory_id)
            if record is None or record.user_id != request.user_id:
                return False
            store.delete(request.memory_id)
            return True

        if not await self._run(delete_own):
            raise errors.not_found("memory", request.memory_id)
        self._log("memory deleted", started, user_id=request.user_id, memory_id=request.memory_id)
        return memory_pb2.DeleteMemoryResponse()


def make_store(config: MemoryConfig):
    if config.backend == "platform":
        from services.memory.platform import PlatformStore

        return PlatformStore(config)
    return EmbeddedStore(config)


async def main() -> None:
    quiet_libraries()
    config = MemoryConfig.from_env()
    logger = logs.setup("memory", config.log_level)
    lock = None
    if config.backend == "embedded":
        lock = DirectoryLock(config.lock_path)
        try:
            lock.acquire()
        except StoreBusy as exc:
            logs.log(logger, logging.ERROR, "data directory busy", error=str(exc))
            raise SystemExit(f"memory: {exc}") from None
    store = make_store(config)
    runner = StoreRunner(store)
    servicer = MemoryServicer(config, runner, logger)
    logs.log(logger, logging.INFO, "memory backend", backend=config.backend, data_dir=str(config.data_dir),
             infer_available=config.llm_enabled or config.backend == "platform")

    async def on_start() -> None:
        started = time.monotonic()
        await runner.load()
        logs.log(logger, logging.INFO, "memory store loaded", seconds=round(time.monotonic() - started, 1))
        if config.seed_templates:
            counts = await runner.run(templates.seed, store, SYSTEM_USER)
            logs.log(logger, logging.INFO, "code templates seeded", **counts)

    async def on_stop() -> None:
        await runner.close()
        if lock is not None:
            lock.release()

    await serve(
        ServerSpec("memory", config.host, config.port, [SERVICE_NAME]),
        register=lambda server: memory_pb2_grpc.add_MemoryServiceServicer_to_server(servicer, server),
        logger=logger,
        on_start=on_start,
        on_stop=on_stop,
    )
