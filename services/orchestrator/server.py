"""The orchestrator server: public API, crew workers, event log."""
from __future__ import annotations

import asyncio

from services.common.env import quiet_libraries

quiet_libraries()

from services.common import logs  # noqa: E402
from services.common.server import ServerSpec, serve  # noqa: E402
from services.orchestrator.clients import ServiceClients  # noqa: E402
from services.orchestrator.config import OrchestratorConfig  # noqa: E402
from services.orchestrator.db.repository import Repository  # noqa: E402
from services.orchestrator.events import EventLog, Notifier  # noqa: E402
from services.orchestrator.execution_service import ExecutionServicer  # noqa: E402
from services.orchestrator.fanout import PgListener  # noqa: E402
from services.orchestrator.identity import Identity  # noqa: E402
from services.orchestrator.strategy_service import StrategyServicer  # noqa: E402
from services.orchestrator.worker import Runner  # noqa: E402
from services.orchestrator.preferences import PreferenceServicer  # noqa: E402
from services.orchestrator.dataset_service import DatasetServicer  # noqa: E402
from services.orchestrator.indicator_service import IndicatorServicer  # noqa: E402
from stratexec.orchestrator.v1 import (  # noqa: E402
    dataset_pb2, dataset_pb2_grpc, execution_pb2, execution_pb2_grpc, indicator_pb2, indicator_pb2_grpc, preference_pb2,
    preference_pb2_grpc, strategy_pb2, strategy_pb2_grpc)

SERVICE_NAMES = [
    execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name,
    strategy_pb2.DESCRIPTOR.services_by_name["StrategyService"].full_name,
    preference_pb2.DESCRIPTOR.services_by_name["PreferenceService"].full_name,
    dataset_pb2.DESCRIPTOR.services_by_name["DatasetService"].full_name,
    indicator_pb2.DESCRIPTOR.services_by_name["IndicatorService"].full_name,
]


async def main() -> None:
    config = OrchestratorConfig.from_env()
    logger = logs.setup("orchestrator", config.log_level)
    repo = Repository(config.database_url)
    events = EventLog(repo, Notifier(asyncio.get_running_loop()))
    clients = ServiceClients(config)
    runner = Runner(config, repo, events, clients)
    identity = Identity(config.auth_mode, config.default_user, config.token_file, config.trust_remote_user_id)

    def register(server) -> None:
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(
            ExecutionServicer(config, identity, repo, events, runner, clients), server)
        strategy_pb2_grpc.add_StrategyServiceServicer_to_server(StrategyServicer(config, identity, repo, clients), server)
        preference_pb2_grpc.add_PreferenceServiceServicer_to_server(PreferenceServicer(identity, repo, clients), server)
        dataset_pb2_grpc.add_DatasetServiceServicer_to_server(DatasetServicer(identity, repo), server)
        indicator_pb2_grpc.add_IndicatorServiceServicer_to_server(IndicatorServicer(identity, repo, clients), server)

    listener = PgListener(config.database_url, events.notifier.notify, runner.wake) if repo.is_postgres else None

    async def on_start() -> None:
        await runner.start()  # crewai was imported with the worker module: once per process
        if listener is not None:
            listener.start()

    async def on_stop() -> None:
        if listener is not None:
            await listener.stop()
        await runner.stop(grace=5.0)
        clients.close()

    spec = ServerSpec("orchestrator", config.host, config.port, SERVICE_NAMES, internal=False)
    await serve(spec, register, logger, on_start=on_start, on_stop=on_stop, unready=lambda: repo.damaged)
