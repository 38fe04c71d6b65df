"""The whole system, as real processes on free ports, once per test session."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import grpc
import pytest

from services.common.config import project_root
from services.stack import start_stack
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2_grpc, strategy_pb2_grpc
from stratexec_cli.client import Client

EXAMPLE = json.loads((project_root() / "examples" / "strategy.json").read_text())
SWEEP_CHUNK = 40
GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stack")
    # sweeps in sandbox jobs of at most 40 combinations, so the small grids of test_optimize.py run in several
    services = start_stack(run_dir, env={"ORCHESTRATOR_SWEEP_CHUNK_COMBINATIONS": str(SWEEP_CHUNK)})
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


def run_by_hand(code: str, data: pathlib.Path, tmp_path: pathlib.Path) -> dict:
    """Run a generated script outside the services (plain python, a data file or directory); its result."""
    script = tmp_path / "strategy.py"
    script.write_text(code)
    result_path = tmp_path / "result.json"
    fd = os.open(result_path, os.O_WRONLY | os.O_CREAT)
    env = {**os.environ, "STRATEXEC_RESULT_FD": str(fd)}
    proc = subprocess.run([sys.executable, str(script), "--data", str(data)], cwd=tmp_path, env=env,
                          pass_fds=(fd,), capture_output=True, text=True, timeout=300)
    os.close(fd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(result_path.read_text())


def served_metrics(result) -> dict:
    """The metrics of a served BacktestResult as a dict (unset optional fields left out)."""
    m = result.metrics
    return {f.name: getattr(m, f.name) for f in m.DESCRIPTOR.fields if not f.has_presence or m.HasField(f.name)}
