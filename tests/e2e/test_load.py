"""Load: 200 concurrent ExecuteStrategy calls (and a retry of each) all
reach a terminal state; none is lost and none runs twice."""
from __future__ import annotations

import collections
import concurrent.futures
import time

import pytest

from services.stack import start_stack
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE, btc_2024

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)

S = execution_pb2
N = 200
TERMINAL = {S.EXECUTION_STATUS_COMPLETED, S.EXECUTION_STATUS_FAILED, S.EXECUTION_STATUS_CANCELLED}
BOUND_S = 900  # a guard against hanging, not a speed target (speeds live in benchmarks/)


@pytest.fixture(scope="module")
def loaded_stack(tmp_path_factory):
    services = start_stack(tmp_path_factory.mktemp("load"), env={"ORCHESTRATOR_WORKERS": "4"})
    yield services
    for svc in reversed(list(services.values())):
        svc.stop()


def test_two_hundred_concurrent_submissions_all_finish_once(loaded_stack):
    address = loaded_stack["orchestrator"].address

    def submit(i: int) -> str:
        return Client(address, user="load").execute(EXAMPLE, btc_2024(), request_id=f"load-{i}").id

    with concurrent.futures.ThreadPoolExecutor(max_workers=N) as pool:
        first = list(pool.map(submit, range(N)))
        retried = list(pool.map(submit, range(N)))  # clients retrying every call

    assert retried == first and len(set(first)) == N

    client = Client(address, user="load")
    deadline = time.monotonic() + BOUND_S
    pending = set(first)
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} executions still running after {BOUND_S}s"
        pending = {i for i in pending if client.get(i).status not in TERMINAL}
        time.sleep(1)

    runs = collections.Counter()
    for execution_id in first:
        events = list(client.watch(execution_id))
        assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, events[-1].message
        claims = [e for e in events if e.type == S.EVENT_TYPE_STATUS_CHANGED and e.status == S.EXECUTION_STATUS_ANALYZING]
        runs[execution_id] = sum(1 for e in events if e.agent_step.tool == "execute_python_code")
        assert len(claims) == 1
    assert set(runs.values()) == {1}
    listed, token = [], ""
    while True:
        page = client.list(page_size=100, page_token=token)
        listed += [e.id for e in page.executions]
        token = page.next_page_token
        if not token:
            break
    assert sorted(listed) == sorted(first)
