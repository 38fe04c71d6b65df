"""Exactly once under overload: a burst of ExecuteStrategy calls to one of
two orchestrator replicas on one fresh PostgreSQL database, then the
consistency check of the whole database (every execution terminal once,
gap-free events, none after the terminal one, one sandbox run per attempt
that finished, counted in the sandbox's own log).

The overloaded replica runs as many crews as its default thread pool has
threads, with a short lease: before heartbeats had a thread and a
connection of their own, its leases expired while it was alive, the other
replica re-ran its executions, and both wrote to the same event log.
"""
from __future__ import annotations

import concurrent.futures

import grpc
import pytest

from services.orchestrator import consistency, convert
from services.stack import start_service, start_stack
from stratexec.orchestrator.v1 import execution_pb2, execution_pb2_grpc
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE, btc_2024
from tests.postgres import fresh_database

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)

BURST = 40


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("exactly-once")
    with fresh_database() as database_url:
        backends = start_stack(run_dir, names=["codegen", "sandbox", "memory"])
        env = {f"{n.upper()}_ADDR": backends[n].address for n in backends}
        # A takeover is fenced, not forbidden: on a loaded machine a 2 s lease can still lapse, so a few
        # more starts than the default 3 keep an unlucky execution from failing as "interrupted".
        env.update(DATABASE_URL=database_url, ORCHESTRATOR_LEASE_S="2", ORCHESTRATOR_MAX_ATTEMPTS="10")
        started = []
        try:
            # "a" gets the burst and runs six crews: every thread of its default pool (2 cores + 4).
            started.append(start_service("orchestrator", run_dir / "a", 0, {**env, "ORCHESTRATOR_WORKERS": "6"}))
            started.append(start_service("orchestrator", run_dir / "b", 0, {**env, "ORCHESTRATOR_WORKERS": "1"}))
            yield database_url, started, backends
        finally:
            for svc in [*started, *backends.values()]:
                svc.stop()


def test_a_burst_on_one_replica_runs_every_execution_once_and_the_database_stays_consistent(two_replicas):
    database_url, (a, b), backends = two_replicas
    request = execution_pb2.ExecuteStrategyRequest(schema=convert.struct(EXAMPLE), params=btc_2024())
    with grpc.insecure_channel(a.address) as channel:
        stub = execution_pb2_grpc.ExecutionServiceStub(channel)
        futures = [stub.ExecuteStrategy.future(request, timeout=300) for _ in range(BURST)]
        ids = [f.result().execution.id for f in futures]

    watcher = Client(b.address)
    finals = {i: list(watcher.watch(i))[-1] for i in ids}
    failed = [e.message for e in finals.values() if e.status != execution_pb2.EXECUTION_STATUS_COMPLETED]
    assert failed == []

    report = consistency.check(database_url, consistency.sandbox_runs_from_log(backends["sandbox"].log_path))
    print(report.summary())  # attempts above BURST: leases taken over (fenced: still consistent)
    assert report.problems == [], report.summary()
    assert report.executions == BURST and report.by_status["COMPLETED"] == BURST
