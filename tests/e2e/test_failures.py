"""Work survives trouble: an orchestrator killed mid-execution resumes its
executions after a restart, and an execution completes when the memory
service is down (with a warning in its event log)."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.stack import start_service, start_stack, wait_serving
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client, ClientError
from tests.e2e.conftest import EXAMPLE, btc_2024

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)

S = execution_pb2
TERMINAL = {S.EXECUTION_STATUS_COMPLETED, S.EXECUTION_STATUS_FAILED, S.EXECUTION_STATUS_CANCELLED}
ORCHESTRATOR_ENV = {"ORCHESTRATOR_LEASE_S": "2", "ORCHESTRATOR_OUTAGE_BUDGET_S": "15", "ORCHESTRATOR_USER_QUEUE_CAP": "4"}


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("failures")
    # Fresh-interpreter sandbox runs take seconds: long enough to cancel one mid-run.
    # A dependency outage re-queues an execution for up to 1 + 2 + 4 + 8 s of back-off here (the default is 60 s).
    services = start_stack(run_dir, env={**ORCHESTRATOR_ENV, "SANDBOX_MODE": "fresh"})
    services["run_dir"] = run_dir
    yield services
    for name in ("orchestrator", "memory", "sandbox", "codegen"):
        services[name].stop()


def wait_for_status(client: Client, execution_id: str, status: int) -> None:
    for event in client.watch(execution_id):
        if event.status == status:
            return
    raise AssertionError(f"{execution_id} never reached {S.ExecutionStatus.Name(status)}")


def test_executions_interrupted_by_sigkill_finish_after_a_restart(own_stack):
    client = Client(own_stack["orchestrator"].address)
    ids = [client.execute(EXAMPLE, btc_2024()).id for _ in range(3)]
    wait_for_status(client, ids[0], S.EXECUTION_STATUS_EXECUTING)  # the first one is inside the sandbox now

    os.killpg(own_stack["orchestrator"].proc.pid, signal.SIGKILL)
    own_stack["orchestrator"].proc.wait()
    env = {f"{n.upper()}_ADDR": own_stack[n].address for n in ("codegen", "sandbox", "memory")}
    env.update(ORCHESTRATOR_ENV)
    own_stack["orchestrator"] = start_service("orchestrator", own_stack["run_dir"], 0, env)

    client = Client(own_stack["orchestrator"].address)
    finals = {i: [e for e in client.watch(i)] for i in ids}
    for execution_id, events in finals.items():
        assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, execution_id
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    requeued = [e for e in finals[ids[0]] if e.type == S.EVENT_TYPE_STATUS_CHANGED and e.message.startswith("re-queued")]
    assert len(requeued) == 1
    assert client.get(ids[0]).backtest_run_id


def sandbox_messages(stack, execution_id: str) -> list[str]:
    lines = stack["sandbox"].log_path.read_text().splitlines()
    return [e["msg"] for e in map(json.loads, filter(lambda l: l.startswith("{"), lines))
            if e.get("execution_id") == execution_id]


def test_cancelling_a_queued_or_running_execution_stops_it_and_its_sandbox_run(own_stack):
    client = Client(own_stack["orchestrator"].address)
    running = client.execute(EXAMPLE, btc_2024())
    queued = [client.execute(EXAMPLE, btc_2024()) for _ in range(3)]
    wait_for_status(client, running.id, S.EXECUTION_STATUS_EXECUTING)
    deadline = time.monotonic() + 60
    while "run started" not in sandbox_messages(own_stack, running.id):  # the run is inside the sandbox now
        assert time.monotonic() < deadline
        time.sleep(0.05)

    stopped = client.cancel(running.id)
    waiting = client.cancel(queued[-1].id)  # two workers: the last one is still queued

    assert stopped.status == S.EXECUTION_STATUS_CANCELLED
    assert waiting.status == S.EXECUTION_STATUS_CANCELLED
    assert not client.get(running.id).backtest_run_id
    events = list(client.watch(running.id))
    assert events[-1].status == S.EXECUTION_STATUS_CANCELLED
    runs = [e.agent_step for e in events if e.agent_step.tool == "execute_python_code"]
    assert all("RUN_OUTCOME_SUCCEEDED" not in step.result for step in runs)
    mine = sandbox_messages(own_stack, running.id)
    assert "run cancelled by the caller" in mine and "run finished" not in mine
    for execution in queued[:-1]:
        assert list(client.watch(execution.id))[-1].status == S.EXECUTION_STATUS_COMPLETED
    with pytest.raises(ClientError) as finished:
        client.cancel(running.id)
    assert finished.value.status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]


def test_past_a_users_queue_cap_submit_is_resource_exhausted_with_a_retry_hint(own_stack):
    flooder = Client(own_stack["orchestrator"].address, user="flooder")
    accepted = []
    with pytest.raises(ClientError) as full:
        for _ in range(12):  # two workers take some; the queue holds four
            accepted.append(flooder.execute(EXAMPLE, btc_2024()).id)
    for execution_id in accepted:
        flooder.cancel(execution_id)

    status = full.value.status
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], status.message
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    assert retry.retry_delay.seconds > 0
    assert 4 <= len(accepted) <= 6


def test_executions_queued_while_the_sandbox_restarts_all_complete(own_stack):
    client = Client(own_stack["orchestrator"].address)
    ids = [client.execute(EXAMPLE, btc_2024()).id for _ in range(4)]  # two run, two wait in the queue
    sandbox = own_stack["sandbox"]
    os.killpg(sandbox.proc.pid, signal.SIGKILL)
    sandbox.proc.wait()
    time.sleep(8)  # about as long as a sandbox takes to restart in production (image pull, warm pool)
    own_stack["sandbox"] = start_service("sandbox", own_stack["run_dir"], sandbox.port, {"SANDBOX_MODE": "fresh"})

    finals = {i: list(client.watch(i)) for i in ids}

    assert {i: events[-1].status for i, events in finals.items()} == {i: S.EXECUTION_STATUS_COMPLETED for i in ids}
    requeued = [e.message for events in finals.values() for e in events if e.message.startswith("re-queued after")]
    assert requeued and all("UNAVAILABLE" in m for m in requeued)  # the outage was seen, and waited out


def test_an_execution_completes_when_memory_is_down(own_stack):
    own_stack["memory"].stop()
    client = Client(own_stack["orchestrator"].address)

    execution = client.execute(EXAMPLE, btc_2024())
    events = list(client.watch(execution.id))

    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED
    warnings = [e.log.message for e in events if e.type == S.EVENT_TYPE_LOG and e.log.level == S.LOG_LEVEL_WARNING]
    assert any("memory unavailable, searching skipped" in w for w in warnings)
    assert any("memory unavailable, pattern not stored" in w for w in warnings)
    assert client.get(execution.id).agent_insights["memory_stored"] is False


def test_a_service_that_stays_unavailable_fails_the_execution_with_that_status(own_stack):
    """Compiled and checked at submit, an execution needs only the sandbox to run (memory is best effort):
    with the sandbox gone for good it is re-queued while the outage budget lasts, then FAILED, UNAVAILABLE."""
    client = Client(own_stack["orchestrator"].address)
    sandbox = own_stack["sandbox"]
    waiting = client.execute(EXAMPLE, btc_2024())  # accepted: the sandbox checked its data at submit
    sandbox.stop()
    try:
        events = list(client.watch(waiting.id))
    finally:
        own_stack["sandbox"] = start_service("sandbox", own_stack["run_dir"], sandbox.port, {"SANDBOX_MODE": "fresh"})
        wait_serving(own_stack["sandbox"].address, 120)

    assert events[-1].status == S.EXECUTION_STATUS_FAILED
    failed = client.get(waiting.id)
    assert failed.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert failed.error_message.startswith("sandbox:") and "after 4 re-queues" in failed.error_message
    requeues = [e for e in events if e.message.startswith("re-queued after")]
    assert len(requeues) == 4
    assert list(client.watch(client.execute(EXAMPLE, btc_2024()).id))[-1].status == S.EXECUTION_STATUS_COMPLETED


def corrupt_table(database: pathlib.Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage, as a failing disk would."""
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file, none left in the WAL
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    with open(database, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xde\xad" * (page_size // 2))


def test_a_corrupt_table_fails_an_execution_once_with_data_loss_and_readiness_goes_not_serving(own_stack):
    run_dir = own_stack["run_dir"]
    own_stack["orchestrator"].stop()
    database = next(run_dir.rglob("orchestrator.db"))
    corrupt_table(database, "backtest_runs")
    env = {f"{n.upper()}_ADDR": own_stack[n].address for n in ("codegen", "sandbox", "memory")}
    own_stack["orchestrator"] = start_service("orchestrator", run_dir, 0, {**env, **ORCHESTRATOR_ENV})
    wait_serving(own_stack["orchestrator"].address, 120)
    client = Client(own_stack["orchestrator"].address)

    execution = client.execute(EXAMPLE, btc_2024())
    events = list(client.watch(execution.id))

    assert events[-1].status == S.EXECUTION_STATUS_FAILED
    failed = client.get(execution.id)
    assert failed.error.code == grpc.StatusCode.DATA_LOSS.value[0], failed.error_message
    assert "INSERT" not in failed.error_message and "backtest_runs" not in failed.error_message
    claims = [e for e in events if e.type == S.EVENT_TYPE_STATUS_CHANGED and e.status == S.EXECUTION_STATUS_ANALYZING]
    assert len(claims) == 1  # failed once, not re-run until "interrupted"
    with grpc.insecure_channel(own_stack["orchestrator"].address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 10
        while health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "readiness still SERVING on a corrupt database"
            time.sleep(0.2)
