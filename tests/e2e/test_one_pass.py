"""One pass per execution: the schema is compiled and its script checked
against the code policy once, at submit, and the execution id travels with
every internal call, so each service's JSON log lines of a real run carry it
(codegen's too when a run calls it: see the proposals in test_claude_path)."""
from __future__ import annotations

import json
import time

from tests.e2e.conftest import EXAMPLE, btc_2024


def log_lines(service) -> list[dict]:
    lines = []
    for text in service.log_path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            pass  # a library printing plain text
    return lines


def of_execution(service, execution_id: str) -> list[str]:
    return [line["msg"] for line in log_lines(service) if line.get("execution_id") == execution_id]


def eventually_of_execution(service, execution_id: str, msg: str, seconds: float = 10.0) -> list[str]:
    """The worker logs "finished" just after the terminal event a watcher may already have read."""
    deadline = time.monotonic() + seconds
    while msg not in (found := of_execution(service, execution_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_every_service_logs_the_execution_id_of_a_real_run(stack, finished_example):
    execution_id, _ = finished_example

    assert of_execution(stack["codegen"], execution_id) == []  # compiled and checked at submit: no call during the run
    assert {"run started", "run finished"} <= set(of_execution(stack["sandbox"], execution_id))
    assert len(of_execution(stack["memory"], execution_id)) >= 3  # two searches and the add (preferences are in SQL)
    assert "finished" in eventually_of_execution(stack["orchestrator"], execution_id, "finished")


def test_the_schema_is_compiled_once_at_submit_and_the_tools_read_that_compilation(stack, client):
    before = sum(1 for line in log_lines(stack["codegen"]) if line["msg"] in ("analyzed", "generated"))

    execution = client.execute(EXAMPLE, btc_2024())
    events = list(client.watch(execution.id))

    compiled = [line for line in log_lines(stack["codegen"]) if line["msg"] in ("analyzed", "generated")][before:]
    assert [line["msg"] for line in compiled] == ["generated"]  # one GenerateCode, made by ExecuteStrategy
    assert compiled[0]["policy"] == "passed"  # its own output checked there; the validate tool reads that
    tools = [e.agent_step.tool for e in events if e.agent_step.tool]
    assert "analyze_strategy" in tools and "generate_vectorbt_code" in tools  # the agents still call their tools
    assert client.code(execution.id).sha256 == compiled[0]["sha256"]  # the code that ran is the one compiled at submit
