"""With an API key the agents run on Claude through CrewAI's Anthropic
support: the orchestrator's Anthropic client is pointed (ANTHROPIC_BASE_URL)
at a fake Messages API on loopback, and a whole execution goes through it,
with native tool calls out and tool results back."""
from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from services.stack import start_stack
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE, btc_2024
from tests.fakes.anthropic_server import ANALYZER, EXECUTOR, GENERATOR, FakeAnthropic

S = execution_pb2
API_KEY = "test-key"
MODEL = "claude-sonnet-4-6"  # not the default: shows STRATEXEC_LLM_MODEL is honoured
DESIGNED_TOOLS = ["analyze_strategy", "search_strategy_memory", "get_user_preferences",
                  "search_code_templates", "generate_vectorbt_code",
                  "validate_python_code", "execute_python_code", "store_strategy_memory"]


@pytest.fixture(scope="module")
def claude(tmp_path_factory):
    """A stack whose orchestrator has a key and talks to the fake; (services, fake)."""
    fake = FakeAnthropic(api_key=API_KEY).start()
    try:
        services = start_stack(tmp_path_factory.mktemp("claude"), env={
            "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.url, "STRATEXEC_LLM_MODEL": f"anthropic/{MODEL}",
        })
        try:
            yield services, fake
        finally:
            for svc in reversed(list(services.values())):
                svc.stop()
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def finished(claude):
    """The example strategy on BTC for 2024, run to its end on "Claude"; (client, execution id, events)."""
    services, _ = claude
    client = Client(services["orchestrator"].address)
    execution = client.execute(EXAMPLE, btc_2024())
    return client, execution.id, list(client.watch(execution.id))


def test_the_execution_completes_with_trades_and_names_the_claude_model(finished):
    client, execution_id, events = finished
    execution = client.get(execution_id)

    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, execution.error_message
    assert execution.status == S.EXECUTION_STATUS_COMPLETED
    assert client.results(execution_id).result.metrics.trades >= 1
    insights = json_format.MessageToDict(execution.agent_insights)
    assert insights["llm"] == MODEL  # Claude, not "stratexec-offline-planner"
    assert "SMA" in insights["interpretation"][0]["formula"]


def test_every_agent_asked_the_fake_messages_api_and_got_its_tool_results_back(claude, finished):
    _, fake = claude
    client, execution_id, _ = finished
    everything = fake.recorded(path=None)  # with CrewAI's count_tokens preflights
    assert all(r.error is None for r in everything), [r.error for r in everything if r.error]
    requests = fake.recorded()  # POST /v1/messages

    assert requests
    assert {r.body["model"] for r in requests} == {MODEL}
    assert all(r.headers.get("anthropic-version") for r in requests)
    assert not any(r.body.get("stream") for r in requests)
    # The three agents, each with its own tools offered natively (not as ReAct text).
    assert {r.agent for r in requests} == {ANALYZER, GENERATOR, EXECUTOR}
    for agent in (ANALYZER, GENERATOR, EXECUTOR):
        asked = [r for r in requests if r.agent == agent]
        assert all(agent in r.system for r in asked)
    executor_tools = {name for r in requests if r.agent == EXECUTOR for name in r.tool_names}
    assert executor_tools == {"execute_python_code", "store_strategy_memory"}

    # Each agent's last request carries its whole conversation: its tool_use blocks,
    # each answered by a tool_result block with the service's reply.
    last = {r.agent: r for r in requests}
    calls = [call for agent in (ANALYZER, GENERATOR, EXECUTOR) for call in last[agent].tool_calls]
    assert [c.name for c in calls] == DESIGNED_TOOLS
    assert all(c.result is not None and not c.is_error and not c.result.startswith("ERROR") for c in calls)
    by_name = {c.name: c for c in calls}

    # The code the sandbox ran is the code the generator produced, passed along by the model.
    code_sha = client.code(execution_id).sha256
    assert json.loads(by_name["generate_vectorbt_code"].result)["code_sha256"] == code_sha
    assert by_name["validate_python_code"].input == {"code_sha256": code_sha}
    assert by_name["execute_python_code"].input == {"code_sha256": code_sha}
    run = json.loads(by_name["execute_python_code"].result)
    assert run["outcome"] == "RUN_OUTCOME_SUCCEEDED"
    assert run["metrics"]["trades"] == client.results(execution_id).result.metrics.trades
    assert json.loads(by_name["store_strategy_memory"].result)["stored"] is True


def test_the_claude_steps_are_events_like_the_offline_ones(finished):
    _, _, events = finished

    steps = [e.agent_step for e in events if e.type == S.EVENT_TYPE_AGENT_STEP]
    assert {s.agent for s in steps} == {ANALYZER, GENERATOR, EXECUTOR}
    tool_steps = [s for s in steps if s.tool]
    assert [s.tool for s in tool_steps] == DESIGNED_TOOLS
    assert [s.agent for s in tool_steps] == [ANALYZER] * 3 + [GENERATOR] * 3 + [EXECUTOR] * 2
    run = next(s for s in tool_steps if s.tool == "execute_python_code")
    assert "code_sha256" in run.arguments and "RUN_OUTCOME_SUCCEEDED" in run.result
