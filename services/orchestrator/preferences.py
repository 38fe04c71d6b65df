"""User preferences (risk tolerance, maximum drawdown, preferred assets),
kept in the memory service as one de-duplicated memory per field, and the
public PreferenceService that reads and sets them."""
from __future__ import annotations

import asyncio

import grpc
from google.protobuf import json_format

from services.common import errors
from services.orchestrator.clients import ServiceClients
from services.orchestrator.convert import struct
from stratexec.memory.v1 import memory_pb2
from stratexec.orchestrator.v1 import preference_pb2, preference_pb2_grpc
from stratexec_runtime import resolve_symbol

KIND = "preference"


def load(clients: ServiceClients, user_id: str, cancel=None) -> dict:
    """{"risk_tolerance": "low", "max_drawdown": 15.0, "preferred_assets": [...]}, only what is set. Blocking."""
    request = memory_pb2.SearchMemoriesRequest(query="trading preferences: risk tolerance, maximum drawdown, assets",
                                               user_id=user_id, filters=struct({"kind": KIND}), limit=10)
    found = clients.call(clients.memory.SearchMemories, request, cancel=cancel).memories
    prefs: dict = {}
    for memory in found:
        meta = json_format.MessageToDict(memory.metadata)
        field = str(meta.get("memory_key", "")).removeprefix("preference:")
        if field in ("risk_tolerance", "max_drawdown", "preferred_assets") and field in meta:
            prefs[field] = meta[field]
    return prefs


def _store(clients: ServiceClients, user_id: str, field: str, value, text: str) -> None:
    metadata = {"kind": KIND, "memory_key": f"preference:{field}", field: value}
    request = memory_pb2.AddMemoryRequest(
        messages=[memory_pb2.MemoryMessage(role="user", content=f"User preference: {text}")],
        user_id=user_id, metadata=struct(metadata), infer=False)
    clients.call(clients.memory.AddMemory, request)


def to_proto(prefs: dict) -> preference_pb2.Preferences:
    out = preference_pb2.Preferences(preferred_assets=prefs.get("preferred_assets", []))
    if "risk_tolerance" in prefs:
        out.risk_tolerance = preference_pb2.RiskTolerance.Value(f"RISK_TOLERANCE_{prefs['risk_tolerance'].upper()}")
    if "max_drawdown" in prefs:
        out.max_drawdown = float(prefs["max_drawdown"])
    return out


class PreferenceServicer(preference_pb2_grpc.PreferenceServiceServicer):
    def __init__(self, identity, clients: ServiceClients):
        self.identity = identity
        self.clients = clients

    async def _load(self, user: str) -> dict:
        try:
            return await asyncio.to_thread(load, self.clients, user)
        except grpc.RpcError as exc:
            raise errors.ApiError(grpc.StatusCode.UNAVAILABLE, f"memory: {exc.details()}", reason="MEMORY_UNAVAILABLE") from None

    async def GetPreferences(self, request, context):
        user = self.identity.user(context)
        return preference_pb2.GetPreferencesResponse(preferences=to_proto(await self._load(user)))

    async def UpdatePreferences(self, request, context):
        user = self.identity.user(context)
        new = request.preferences
        bad = []
        if new.HasField("max_drawdown") and not 0 < new.max_drawdown <= 100:
            bad.append(("preferences.max_drawdown", "a positive percentage up to 100 (15 means -15%)"))
        if len(new.preferred_assets) > 50:
            bad.append(("preferences.preferred_assets", "at most 50 symbols"))
        if bad:
            raise errors.invalid_argument("invalid preferences", bad)
        writes = []
        if new.risk_tolerance:
            level = preference_pb2.RiskTolerance.Name(new.risk_tolerance).removeprefix("RISK_TOLERANCE_").lower()
            writes.append(("risk_tolerance", level, f"risk tolerance is {level}"))
        if new.HasField("max_drawdown"):
            writes.append(("max_drawdown", new.max_drawdown, f"maximum drawdown {new.max_drawdown:g}%"))
        if new.preferred_assets:
            assets = list(dict.fromkeys(resolve_symbol(a) for a in new.preferred_assets))
            writes.append(("preferred_assets", assets, f"preferred assets {', '.join(assets)}"))
        try:
            for field, value, text in writes:
                await asyncio.to_thread(_store, self.clients, user, field, value, text)
        except grpc.RpcError as exc:
            raise errors.ApiError(grpc.StatusCode.UNAVAILABLE, f"memory: {exc.details()}", reason="MEMORY_UNAVAILABLE") from None
        return preference_pb2.UpdatePreferencesResponse(preferences=to_proto(await self._load(user)))
