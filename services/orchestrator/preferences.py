"""User preferences (risk tolerance, maximum drawdown, preferred assets):
one row per user in SQL, the source of truth, with their text also in the
memory service so a semantic search finds them beside the user's other
memories; and the public PreferenceService that reads and sets them.

Preferences set before they moved to SQL live only in memory: the first read
of such a user copies them over (once: a user with none gets an empty row)."""
from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf import json_format

from services.common import errors
from services.common.logs import log
from services.orchestrator.clients import ServiceClients
from services.orchestrator.convert import struct
from services.orchestrator.db.repository import Repository
from stratexec.memory.v1 import memory_pb2
from stratexec.orchestrator.v1 import preference_pb2, preference_pb2_grpc
from stratexec_runtime import resolve_symbol

KIND = "preference"
FIELDS = ("risk_tolerance", "max_drawdown", "preferred_assets")
logger = logging.getLogger("orchestrator.preferences")


def load(repo: Repository, clients: ServiceClients, user_id: str, cancel=None) -> dict:
    """{"risk_tolerance": "low", "max_drawdown": 15.0, "preferred_assets": [...]}, only what is set. Blocking."""
    row = repo.get_preferences(user_id)
    if row is None:  # not read since preferences moved to SQL: copy what memory has (maybe nothing)
        row = repo.set_preferences(user_id, _from_memory(clients, user_id, cancel))
    return _as_dict(row)


def _as_dict(row) -> dict:
    return {f: getattr(row, f) for f in FIELDS if getattr(row, f) not in (None, [])}


def _from_memory(clients: ServiceClients, user_id: str, cancel=None) -> dict:
    """The preferences an older orchestrator kept as memories (one per field)."""
    request = memory_pb2.SearchMemoriesRequest(query="trading preferences: risk tolerance, maximum drawdown, assets",
                                               user_id=user_id, filters=struct({"kind": KIND}), limit=10)
    prefs: dict = {}
    for memory in clients.call(clients.memory.SearchMemories, request, cancel=cancel).memories:
        meta = json_format.MessageToDict(memory.metadata)
        field = str(meta.get("memory_key", "")).removeprefix("preference:")
        if field in FIELDS and field in meta:
            prefs[field] = meta[field]
    return prefs


def _remember(clients: ServiceClients, user_id: str, field: str, value, text: str) -> None:
    """The text of one preference in memory, for search (one de-duplicated memory per field)."""
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


def _changes(new: preference_pb2.Preferences) -> list[tuple[str, object, str]]:
    """(field, value, text) of every field the request sets; INVALID_ARGUMENT for bad values."""
    bad = []
    if new.HasField("max_drawdown") and not 0 < new.max_drawdown <= 100:
        bad.append(("preferences.max_drawdown", "a positive percentage up to 100 (15 means -15%)"))
    if len(new.preferred_assets) > 50:
        bad.append(("preferences.preferred_assets", "at most 50 symbols"))
    if bad:
        raise errors.invalid_argument("invalid preferences", bad)
    changes = []
    if new.risk_tolerance:
        level = preference_pb2.RiskTolerance.Name(new.risk_tolerance).removeprefix("RISK_TOLERANCE_").lower()
        changes.append(("risk_tolerance", level, f"risk tolerance is {level}"))
    if new.HasField("max_drawdown"):
        changes.append(("max_drawdown", new.max_drawdown, f"maximum drawdown {new.max_drawdown:g}%"))
    if new.preferred_assets:
        assets = list(dict.fromkeys(resolve_symbol(a) for a in new.preferred_assets))
        changes.append(("preferred_assets", assets, f"preferred assets {', '.join(assets)}"))
    return changes


class PreferenceServicer(preference_pb2_grpc.PreferenceServiceServicer):
    def __init__(self, identity, repo: Repository, clients: ServiceClients):
        self.identity = identity
        self.repo = repo
        self.clients = clients

    async def _load(self, user: str) -> dict:
        try:
            return await asyncio.to_thread(load, self.repo, self.clients, user)
        except grpc.RpcError as exc:  # only a user not read since the move to SQL needs memory
            raise errors.ApiError(grpc.StatusCode.UNAVAILABLE, f"memory: {exc.details()}", reason="MEMORY_UNAVAILABLE") from None

    async def GetPreferences(self, request, context):
        user = self.identity.user(context)
        return preference_pb2.GetPreferencesResponse(preferences=to_proto(await self._load(user)))

    async def UpdatePreferences(self, request, context):
        user = self.identity.user(context)
        changes = _changes(request.preferences)
        await self._load(user)  # an older memory-only set is copied first, so fields not set here are kept
        row = await asyncio.to_thread(self.repo.set_preferences, user, {f: v for f, v, _ in changes})
        for field, value, text in changes:  # the text for search: best effort, SQL holds the preference
            try:
                await asyncio.to_thread(_remember, self.clients, user, field, value, text)
            except grpc.RpcError as exc:
                log(logger, logging.WARNING, "preference not copied to memory", field=field, error=exc.details())
        return preference_pb2.UpdatePreferencesResponse(preferences=to_proto(_as_dict(row)))
