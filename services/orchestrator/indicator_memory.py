"""A user's saved indicators in memory (mem0), so the Strategy Analyzer finds them, and the
strategies that used them, by meaning ("an oscillator of the distance to the 10-day average").

The database is the record (IndicatorService); memory is a searchable copy, best effort: when
the memory service is down the indicator is saved all the same, with a warning in the log.
"""
from __future__ import annotations

import logging

import grpc

from services.common.logs import log
from services.orchestrator.clients import ServiceClients
from services.orchestrator.convert import struct
from stratexec.memory.v1 import memory_pb2

KIND = "custom_indicator"
logger = logging.getLogger("orchestrator.indicators")


def _key(name: str) -> str:
    return f"indicator:{name}"  # one memory per user and indicator: saving it again replaces it


def describe(name: str, expression: str) -> str:
    return f"Custom indicator {name} = {expression}"


def remember(clients: ServiceClients, user_id: str, name: str, expression: str) -> None:
    request = memory_pb2.AddMemoryRequest(
        messages=[memory_pb2.MemoryMessage(role="user", content=f"{describe(name, expression)} (saved by the user)")],
        user_id=user_id, metadata=struct({"kind": KIND, "memory_key": _key(name), "name": name,
                                          "expression": expression}), infer=False)
    try:
        clients.call(clients.memory.AddMemory, request)
    except grpc.RpcError as exc:
        log(logger, logging.WARNING, "saved indicator not copied to memory", indicator=name, error=exc.details())


def forget(clients: ServiceClients, user_id: str, name: str) -> None:
    try:
        found = clients.call(clients.memory.SearchMemories, memory_pb2.SearchMemoriesRequest(
            query=name, user_id=user_id, filters=struct({"kind": KIND, "memory_key": _key(name)}), limit=5))
        for memory in found.memories:
            clients.call(clients.memory.DeleteMemory, memory_pb2.DeleteMemoryRequest(memory_id=memory.id, user_id=user_id))
    except grpc.RpcError as exc:
        log(logger, logging.WARNING, "deleted indicator still in memory", indicator=name, error=exc.details())


def used_in(schema: dict) -> list[tuple[str, str]]:
    """The (name, expression) of every indicator node of a strategy, to remember with its outcome."""
    return [(str(n["meta"].get("name")), str(n["meta"].get("expression"))) for n in schema.get("nodes", [])
            if isinstance(n, dict) and n.get("type") == "indicator" and isinstance(n.get("meta"), dict)]
