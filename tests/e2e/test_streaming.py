"""Many subscribers follow one execution at once, each sees every event
once and in order, and a subscriber that stops reading never holds the
execution back."""
from __future__ import annotations

import threading
import time

from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE, btc_2024

S = execution_pb2


def test_twenty_live_subscribers_each_get_the_whole_log_in_order(orchestrator_addr):
    client = Client(orchestrator_addr)
    execution = client.execute(EXAMPLE, btc_2024())
    seen: dict[int, list] = {}

    def follow(n: int) -> None:
        seen[n] = [e.SerializeToString() for e in Client(orchestrator_addr).watch(execution.id)]

    threads = [threading.Thread(target=follow, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)

    stored = [e.SerializeToString() for e in client.watch(execution.id)]
    assert len(seen) == 20
    assert all(events == stored for events in seen.values())
    assert execution_pb2.ExecutionEvent.FromString(stored[-1]).status == S.EXECUTION_STATUS_COMPLETED


def test_a_stalled_subscriber_does_not_hold_the_execution_back(orchestrator_addr):
    client = Client(orchestrator_addr)
    execution = client.execute(EXAMPLE, btc_2024())
    stream = client.watch(execution.id)
    first = next(stream)  # take one event, then stop reading

    deadline = time.monotonic() + 300
    while client.get(execution.id).status != S.EXECUTION_STATUS_COMPLETED:
        assert time.monotonic() < deadline, "the execution did not finish while a subscriber stalled"
        time.sleep(0.2)

    rest = list(stream)  # the stalled subscriber resumes and still gets everything, once
    assert [first.sequence] + [e.sequence for e in rest] == list(range(1, len(rest) + 2))
    assert rest[-1].status == S.EXECUTION_STATUS_COMPLETED
