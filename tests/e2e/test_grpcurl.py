"""Operators use grpcurl: reflection lists the services, health answers on
every port, and an execution can be started and followed from the shell."""
from __future__ import annotations

import json
import subprocess

from tests.e2e.conftest import EXAMPLE, GRPCURL


def grpcurl(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_reflection_lists_both_orchestrator_services(orchestrator_addr):
    listed = grpcurl(orchestrator_addr, "list").split()

    assert "stratexec.orchestrator.v1.ExecutionService" in listed
    assert "stratexec.orchestrator.v1.StrategyService" in listed
    assert "grpc.health.v1.Health" in listed


def test_health_is_serving_on_all_four_services(stack):
    for name, service in stack.items():
        reply = json.loads(grpcurl(service.address, "grpc.health.v1.Health/Check"))
        assert reply == {"status": "SERVING"}, name


def test_execute_and_watch_through_grpcurl(orchestrator_addr):
    request = {"schema": EXAMPLE, "params": {"symbols": ["BTC"], "start_date": "2024-01-01", "end_date": "2024-12-31"},
               "request_id": "grpcurl-e2e"}
    started = json.loads(grpcurl("-d", json.dumps(request), orchestrator_addr,
                                 "stratexec.orchestrator.v1.ExecutionService/ExecuteStrategy"))
    execution_id = started["execution"]["id"]
    assert started["execution"]["status"] == "EXECUTION_STATUS_QUEUED"

    stream = grpcurl("-d", json.dumps({"execution_id": execution_id}), orchestrator_addr,
                     "stratexec.orchestrator.v1.ExecutionService/WatchExecution")
    decoder, events, text = json.JSONDecoder(), [], stream.strip()
    while text:
        event, end = decoder.raw_decode(text)
        events.append(event["event"])
        text = text[end:].strip()

    statuses = [e["status"] for e in events if e["type"] == "EVENT_TYPE_STATUS_CHANGED"]
    assert statuses[0] == "EXECUTION_STATUS_QUEUED" and statuses[-1] == "EXECUTION_STATUS_COMPLETED"
    assert [int(e["sequence"]) for e in events] == list(range(1, len(events) + 1))
