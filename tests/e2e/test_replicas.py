"""Two orchestrator replicas on one PostgreSQL database: an execution
submitted to one is watched live from the other, and under a burst each
execution is claimed and run exactly once."""
from __future__ import annotations

import collections

import pytest

from services.stack import start_service, start_stack
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE, btc_2024
from tests.postgres import fresh_database

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)

S = execution_pb2


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("replicas")
    with fresh_database() as database_url:
        backends = start_stack(run_dir, names=["codegen", "sandbox", "memory"])
        env = {f"{n.upper()}_ADDR": backends[n].address for n in backends}
        env.update(DATABASE_URL=database_url, ORCHESTRATOR_WORKERS="1")
        started = []
        try:
            for name in ("a", "b"):
                started.append(start_service("orchestrator", run_dir / name, 0, env))
            yield started
        finally:
            for svc in [*started, *backends.values()]:
                svc.stop()


def test_a_watcher_on_one_replica_sees_every_event_of_an_execution_run_anywhere(replicas):
    a, b = (Client(r.address) for r in replicas)

    executions = [a.execute(EXAMPLE, btc_2024()) for _ in range(4)]
    watched = {e.id: list(b.watch(e.id)) for e in executions}

    for execution_id, events in watched.items():
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert events[-1].status == S.EXECUTION_STATUS_COMPLETED
        claims = [e for e in events if e.type == S.EVENT_TYPE_STATUS_CHANGED and e.status == S.EXECUTION_STATUS_ANALYZING]
        assert len(claims) == 1, f"{execution_id} was claimed {len(claims)} times"
        assert [e.SerializeToString() for e in a.watch(execution_id)] == [e.SerializeToString() for e in events]


def test_each_of_a_burst_of_executions_runs_exactly_once_across_replicas(replicas):
    a, b = (Client(r.address) for r in replicas)

    ids = [(a if i % 2 else b).execute(EXAMPLE, btc_2024()).id for i in range(8)]
    finals = {i: list(a.watch(i)) for i in ids}

    tools = collections.Counter()
    for events in finals.values():
        assert events[-1].status == S.EXECUTION_STATUS_COMPLETED
        tools.update(e.agent_step.tool for e in events if e.agent_step.tool == "execute_python_code")
    assert tools["execute_python_code"] == len(ids)  # one sandbox run per execution, none twice
