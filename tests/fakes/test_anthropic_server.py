"""The fake Messages API, through the real ``anthropic`` SDK: it answers in the
API's shapes and refuses what the real API refuses."""
from __future__ import annotations

import threading

import anthropic
import pytest

from tests.fakes.anthropic_server import EXECUTOR, FakeAnthropic

SHA = "ab" * 32
TOOLS = [
    {"name": "execute_python_code", "description": "run", "input_schema": {
        "type": "object", "properties": {"code_sha256": {"type": "string"}}, "required": ["code_sha256"]}},
    {"name": "store_strategy_memory", "description": "remember", "input_schema": {
        "type": "object", "properties": {"note": {"type": "string"}}}},
]
TASK = {"role": "user", "content": f'Run the code.\n\nThis is the context you\'re working with:\n{{"code_sha256": "{SHA}", "valid": true}}'}


@pytest.fixture
def fake():
    with FakeAnthropic(api_key="test-key") as server:
        yield server
    assert not [t for t in threading.enumerate() if t.name == "fake-anthropic"]


def sdk(fake: FakeAnthropic, key: str = "test-key") -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=fake.url, max_retries=0)


def create(client: anthropic.Anthropic, messages: list, tools=TOOLS):
    return client.messages.create(model="claude-sonnet-4-6", max_tokens=1024, system="You are Code Executor.",
                                  tools=tools, messages=messages, timeout=10)


def answered(message, result: str) -> list:
    call = message.content[-1]
    return [{"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": result}]}]


def test_it_calls_the_tools_in_order_with_the_sha_from_the_task_then_answers(fake):
    client = sdk(fake)

    first = create(client, [TASK])
    assert (first.type, first.role, first.stop_reason) == ("message", "assistant", "tool_use")
    assert first.content[-1].type == "tool_use" and first.content[-1].name == "execute_python_code"
    assert first.content[-1].input == {"code_sha256": SHA}

    history = [TASK, *answered(first, '{"outcome": "RUN_OUTCOME_SUCCEEDED", "metrics": {"trades": 4}}')]
    second = create(client, history)
    assert second.content[-1].name == "store_strategy_memory"

    final = create(client, [*history, *answered(second, '{"stored": true}')])
    assert final.stop_reason == "end_turn" and [b.type for b in final.content] == ["text"]
    assert '"trades": 4' in final.content[0].text
    assert final.usage.input_tokens > 0
    assert [r.agent for r in fake.recorded()] == [EXECUTOR] * 3


def test_a_failed_run_is_remembered_then_ends_the_turns_with_a_failure(fake):
    first = create(sdk(fake), [TASK])
    history = [TASK, *answered(first, '{"outcome": "RUN_OUTCOME_TIMED_OUT", "error": "sandbox: timed out"}')]
    second = create(sdk(fake), history)
    assert second.content[-1].name == "store_strategy_memory"
    final = create(sdk(fake), [*history, *answered(second, '{"stored": true}')])
    assert final.stop_reason == "end_turn" and final.content[0].text.startswith("FAILED")


def test_it_refuses_what_the_real_api_refuses(fake):
    first = create(sdk(fake), [TASK])
    unanswered = [TASK, answered(first, "x")[0], {"role": "user", "content": "go on"}]
    with pytest.raises(anthropic.BadRequestError, match="without tool_result"):
        create(sdk(fake), unanswered)
    with pytest.raises(anthropic.BadRequestError, match="must define tools"):
        create(sdk(fake), [TASK, *answered(first, "x")], tools=anthropic.omit)
    with pytest.raises(anthropic.AuthenticationError):
        create(sdk(fake, key="wrong-key"), [TASK])
    assert len(fake.recorded()) == 4 and all(r.error for r in fake.recorded()[1:])
