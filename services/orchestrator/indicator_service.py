"""Saved custom indicators: the public IndicatorService that saves (once codegen has compiled the expression),
lists and deletes them, and the step of every submit that gives a strategy the saved indicators its rules name,
as indicator nodes (so the analysis, the stored strategy and the script show their definitions)."""
from __future__ import annotations

import asyncio
import re

from services.common import errors
from services.orchestrator import convert, indicator_memory
from services.orchestrator.checks import analyze
from services.orchestrator.clients import ServiceClients
from services.orchestrator.db.repository import Repository
from services.orchestrator.identity import Identity
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import indicator_pb2, indicator_pb2_grpc

NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")  # the code generator's indicator names
CONDITION_TYPES = ("entry_condition", "exit_condition", "filter")


def to_proto(row) -> indicator_pb2.SavedIndicator:
    return indicator_pb2.SavedIndicator(name=row.name, expression=row.expression, created_at=convert.timestamp(row.created_at))


def with_saved_indicators(repo: Repository, user_id: str, schema: dict) -> dict:
    """``schema`` with an indicator node (id "saved_<name>") for each saved indicator of the user that a rule or
    another indicator names and no node of the schema defines; the schema itself when none is needed. Blocking."""
    nodes = schema.get("nodes") if isinstance(schema, dict) else None
    if not isinstance(nodes, list):
        return schema  # the code generator says what is wrong with it
    defined = {(n.get("meta") or {}).get("name") for n in nodes if isinstance(n, dict) and n.get("type") == "indicator"}
    saved = {row.name: row for row in repo.list_indicators(user_id) if row.name not in defined}
    if not saved:
        return schema
    texts = [str(rule) for n in nodes if isinstance(n, dict) and n.get("type") in CONDITION_TYPES
             for rule in ((n.get("meta") or {}).get("rules") or [])]
    texts += [str((n.get("meta") or {}).get("expression", "")) for n in nodes if isinstance(n, dict) and n.get("type") == "indicator"]
    needed: list[str] = []
    while True:  # a saved indicator may name another saved one
        words = set(re.findall(r"[a-z_][a-z0-9_]*", " ".join(texts).lower()))
        more = [name for name in saved if name in words and name not in needed]
        if not more:
            break
        needed += more
        texts += [saved[name].expression for name in more]
    added = [{"id": f"saved_{name}", "type": "indicator", "meta": {"name": name, "expression": saved[name].expression}}
             for name in sorted(needed)]
    return {**schema, "nodes": added + nodes} if added else schema


async def expanded(repo: Repository, user_id: str, schema):
    """A schema (Struct) with the user's saved indicators its rules name, as indicator nodes; itself if none."""
    given = convert.struct_to_dict(schema)
    result = await asyncio.to_thread(with_saved_indicators, repo, user_id, given)
    return schema if result is given else convert.struct(result)


class IndicatorServicer(indicator_pb2_grpc.IndicatorServiceServicer):
    def __init__(self, identity: Identity, repo: Repository, clients: ServiceClients):
        self.identity = identity
        self.repo = repo
        self.clients = clients

    async def SaveIndicator(self, request, context):
        user = self.identity.user(context)
        name, expression = request.name.strip(), request.expression.strip()
        bad = []
        if not NAME_RE.match(name):
            bad.append(("name", "lower-case letters, digits and '_', starting with a letter or '_', at most 40"))
        if not expression or len(expression) > 500:
            bad.append(("expression", "an expression of 1 to 500 characters"))
        if bad:
            raise errors.invalid_argument(f"cannot save indicator {name!r}", bad)
        schema = {"nodes": [{"id": "indicator", "type": "indicator", "meta": {"name": name, "expression": expression}},
                            {"id": "check", "type": "entry_condition", "meta": {"rules": [f"Enter when {name} is above 0"]}}]}
        schema = await asyncio.to_thread(with_saved_indicators, self.repo, user, schema)  # it may use saved ones
        try:
            await analyze(self.clients, convert.struct(schema), backtest_pb2.BacktestParams())
        except errors.ApiError as exc:  # the code generator's words, on this request's field
            if exc.code.name != "INVALID_ARGUMENT":
                raise
            raise errors.invalid_argument(f"indicator {name}: {exc.message}", [("expression", exc.message)]) from None
        row = await asyncio.to_thread(self.repo.put_indicator, user, name, expression, request.replace)
        if row is None:
            raise errors.name_taken("indicator", name)
        await asyncio.to_thread(indicator_memory.remember, self.clients, user, name, expression)
        return indicator_pb2.SaveIndicatorResponse(indicator=to_proto(row))

    async def ListIndicators(self, request, context):
        rows = await asyncio.to_thread(self.repo.list_indicators, self.identity.user(context))
        return indicator_pb2.ListIndicatorsResponse(indicators=[to_proto(r) for r in rows])

    async def DeleteIndicator(self, request, context):
        user = self.identity.user(context)
        if not await asyncio.to_thread(self.repo.delete_indicator, user, request.name.strip()):
            raise errors.not_found("indicator", request.name.strip())
        await asyncio.to_thread(indicator_memory.forget, self.clients, user, request.name.strip())
        return indicator_pb2.DeleteIndicatorResponse()
