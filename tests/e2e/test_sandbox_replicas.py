"""Two sandbox replicas behind one orchestrator: client-side round_robin
spreads the runs, and when one replica is SIGKILLed under load every
execution still completes (the run that was on the dead replica is retried
on the other)."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from services.stack import start_service, wait_serving
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE, btc_2024

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)

S = execution_pb2


@pytest.fixture(scope="module")
def sandbox_replicas(stack, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sandbox-replicas")
    started = []
    try:
        for i in range(2):
            started.append(start_service("sandbox", run_dir / f"sandbox-{i}", 0,
                                         {"SANDBOX_SCRATCH_DIR": str(run_dir / f"scratch-{i}")}))
        for svc in started:
            wait_serving(svc.address, 180, svc.proc, svc.log_path)
        env = {"CODEGEN_ADDR": stack["codegen"].address, "MEMORY_ADDR": stack["memory"].address,
               "SANDBOX_ADDR": ",".join(s.address for s in started), "ORCHESTRATOR_WORKERS": "2"}
        orchestrator = start_service("orchestrator", run_dir / "orchestrator", 0, env)
        started.append(orchestrator)
        wait_serving(orchestrator.address, 180, orchestrator.proc, orchestrator.log_path)
        yield started[:2], orchestrator
    finally:
        for svc in reversed(started):
            svc.stop()


def runs(service) -> dict[str, list[str]]:
    """run_id -> the messages of that run, from the replica's JSON log; execution ids under '_by_run'."""
    found: dict[str, list[str]] = {}
    for text in service.log_path.read_text().splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if "run_id" in line:
            found.setdefault(line["run_id"], []).append((line["msg"], line.get("execution_id", "")))
    return found


def executions_run(service, message: str) -> set[str]:
    return {eid for lines in runs(service).values() for msg, eid in lines if msg == message}


def test_a_replica_killed_under_load_loses_no_execution(sandbox_replicas):
    (doomed, survivor), orchestrator = sandbox_replicas
    client = Client(orchestrator.address)

    ids = [client.execute(EXAMPLE, btc_2024()).id for _ in range(8)]
    deadline, interrupted = time.monotonic() + 180, ""
    while not interrupted and time.monotonic() < deadline:  # SIGKILL the replica in the middle of a run
        for lines in runs(doomed).values():
            messages = [m for m, _ in lines]
            if "run started" in messages and "run finished" not in messages:
                os.killpg(doomed.proc.pid, signal.SIGKILL)
                interrupted = lines[0][1]
                break
        time.sleep(0.01)
    assert interrupted, "no run reached the first replica"
    finals = {i: list(client.watch(i))[-1] for i in ids}

    assert {i: S.ExecutionStatus.Name(e.status) for i, e in finals.items()} == {i: "EXECUTION_STATUS_COMPLETED" for i in ids}
    assert interrupted in ids and interrupted in executions_run(survivor, "run finished")  # retried on the survivor
    assert executions_run(survivor, "run started") - {interrupted}  # round_robin: the survivor had runs of its own too
