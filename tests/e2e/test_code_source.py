"""Without a language model the compiled script always runs: the offline
planner is not offered the proposal tools, and the execution says so."""
from __future__ import annotations

from stratexec.orchestrator.v1 import execution_pb2

S = execution_pb2


def test_offline_the_compiled_script_runs_and_the_insights_say_why(client, finished_example):
    execution_id, events = finished_example

    tools = {e.agent_step.tool for e in events if e.type == S.EVENT_TYPE_AGENT_STEP}
    assert not tools & {"read_generated_code", "propose_vectorbt_code"}
    assert not [e for e in events if "propos" in e.message]
    insights = client.get(execution_id).agent_insights
    assert insights["code_source"] == "compiled"
    assert insights["code_source_reason"] == "the offline planner does not propose code"
    assert insights["code_sha256"] == client.code(execution_id).sha256
    assert "code_proposals" not in insights
