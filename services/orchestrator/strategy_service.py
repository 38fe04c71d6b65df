"""stratexec.orchestrator.v1.StrategyService: stored strategy schemas."""
from __future__ import annotations

import asyncio

from services.common import backtest_params, errors, request_limits, struct_limits
from services.orchestrator import convert
from services.orchestrator.clients import ServiceClients
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.db.repository import Repository
from services.orchestrator.identity import Identity
from services.orchestrator.checks import analyze
from services.orchestrator.indicator_service import expanded
from stratexec.orchestrator.v1 import strategy_pb2, strategy_pb2_grpc

MAX_PAGE = 500


def page_size(requested: int) -> int:
    if requested < 0:
        raise errors.invalid_argument("page_size must not be negative", [("page_size", "must be >= 0")])
    return min(requested or 50, MAX_PAGE)


class StrategyServicer(strategy_pb2_grpc.StrategyServiceServicer):
    def __init__(self, config: OrchestratorConfig, identity: Identity, repo: Repository, clients: ServiceClients):
        self.config = config
        self.identity = identity
        self.repo = repo
        self.clients = clients

    async def CreateStrategy(self, request, context):
        user = self.identity.user(context)
        request_limits.check_request_size(request)
        if not request.HasField("schema") or not request.schema.fields:
            raise errors.invalid_argument("schema is required", [("schema", "a strategy graph {\"nodes\": [...]}")])
        bad = struct_limits.problems(request.schema, "schema")
        if bad:
            raise errors.invalid_argument("invalid CreateStrategy request", bad)
        schema = await expanded(self.repo, user, request.schema)  # stored with the saved indicators it names
        analysis = await analyze(self.clients, schema, backtest_params.resolve(None).to_proto())
        name = request.name.strip() or analysis.summary[:256] or "strategy"
        row = await asyncio.to_thread(self.repo.create_strategy, user, name, convert.struct_to_dict(schema))
        return strategy_pb2.CreateStrategyResponse(strategy=convert.strategy(row))

    async def GetStrategy(self, request, context):
        user = self.identity.user(context)
        row = await asyncio.to_thread(self.repo.get_strategy, user, request.strategy_id)
        if row is None:
            raise errors.not_found("strategy", request.strategy_id)
        return strategy_pb2.GetStrategyResponse(strategy=convert.strategy(row))

    async def ListStrategies(self, request, context):
        user = self.identity.user(context)
        rows, token = await asyncio.to_thread(self.repo.list_strategies, user, page_size(request.page_size),
                                              request.page_token)
        return strategy_pb2.ListStrategiesResponse(strategies=[convert.strategy(r) for r in rows], next_page_token=token)
