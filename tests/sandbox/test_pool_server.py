"""The warm pool behind the real gRPC server: results, isolation, the bounded queue."""
import concurrent.futures
import time

import grpc
import pytest

from stratexec.sandbox.v1 import sandbox_pb2

from .conftest import POOL_RECYCLE_AFTER as RECYCLE_AFTER
from .scripts import EXAMPLE, INFINITE_LOOP
from .test_execute_code import PARAMS


def request(code, timeout_seconds=0):
    return sandbox_pb2.ExecuteCodeRequest(code=code, params=PARAMS, execution_id="pool-test", timeout_seconds=timeout_seconds)


def test_pool_runs_the_example_and_reports_its_layers(pool_stub):
    for _ in range(2):  # two forks of the same warm parent
        reply = pool_stub.ExecuteCode(request(EXAMPLE), timeout=60)
        assert reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED, (reply.error, list(reply.logs))
        assert reply.result.metrics.trades > 0
    assert "process-group" in reply.isolation and "rlimits" in reply.isolation


def test_a_full_queue_is_resource_exhausted(pool_stub):
    with concurrent.futures.ThreadPoolExecutor(3) as executor:
        running = executor.submit(pool_stub.ExecuteCode, request(INFINITE_LOOP, 4), timeout=60)
        time.sleep(0.5)
        queued = executor.submit(pool_stub.ExecuteCode, request(INFINITE_LOOP, 1), timeout=60)
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as info:
            pool_stub.ExecuteCode(request(EXAMPLE), timeout=60)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert running.result().outcome == sandbox_pb2.RUN_OUTCOME_TIMED_OUT
        assert queued.result().outcome == sandbox_pb2.RUN_OUTCOME_TIMED_OUT
    reply = pool_stub.ExecuteCode(request(EXAMPLE), timeout=60)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED


@pytest.mark.slow
def test_warm_parents_are_recycled_after_n_runs(pool_stub, pool_server):
    for _ in range(RECYCLE_AFTER + 1):
        reply = pool_stub.ExecuteCode(request(EXAMPLE), timeout=120)
        assert reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED
    ready = [line for line in pool_server.log_path.read_text().splitlines() if "warm parent ready" in line]
    assert len(ready) >= 2, ready
