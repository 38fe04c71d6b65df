"""The whole system, as real processes on free ports, once per test session."""
from __future__ import annotations

import json
import pathlib
import sys

import grpc
import pytest

from services.common.config import project_root
from services.stack import start_stack
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2_grpc, strategy_pb2_grpc
from stratexec_cli.client import Client

EXAMPLE = json.loads((project_root() / "examples" / "strategy.json").read_text())
GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stack")
    services = start_stack(run_dir)
    yield services
    for svc in reversed(list(services.values())):
        svc.stop()


@pytest.fixture(scope="session")
def orchestrator_addr(stack) -> str:
    return stack["orchestrator"].address


@pytest.fixture
def client(orchestrator_addr) -> Client:
    return Client(orchestrator_addr)


@pytest.fixture
def stubs(orchestrator_addr):
    with grpc.insecure_channel(orchestrator_addr) as channel:
        yield execution_pb2_grpc.ExecutionServiceStub(channel), strategy_pb2_grpc.StrategyServiceStub(channel)


def btc_2024() -> backtest_pb2.BacktestParams:
    return backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2024-01-01", end_date="2024-12-31")


@pytest.fixture(scope="session")
def finished_example(orchestrator_addr):
    """The example strategy on BTC for 2024, run to its end once; (execution id, live events)."""
    client = Client(orchestrator_addr)
    execution = client.execute(EXAMPLE, btc_2024())
    events = list(client.watch(execution.id))
    return execution.id, events
