"""The fake Messages API, through the real ``anthropic`` SDK: it answers in the
API's shapes and refuses what the real API refuses."""
from __future__ import annotations

import ast
import json
import threading

import anthropic
import pytest

from tests.fakes.anthropic_server import (EXECUTOR, RENAMES, REWRITES, FakeAnthropic, different_rewrite,
                                          violating_rewrite)

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


# -- the Code Generator's proposals ------------------------------------------------------------------------------------

def _tool(name: str, **properties) -> dict:
    return {"name": name, "description": name, "input_schema": {
        "type": "object", "properties": {k: {"type": v} for k, v in properties.items()}}}


GENERATOR_TOOLS = [_tool("search_code_templates", query="string"), _tool("generate_vectorbt_code"),
                   _tool("validate_python_code", code_sha256="string")]
PROPOSAL_TOOLS = [_tool("read_generated_code", code_sha256="string"),
                  _tool("propose_vectorbt_code", code="string", rationale="string")]
GENERATE_TASK = {"role": "user", "content": "Look up code templates, generate the code, then validate it."}
PROPOSED_SHA = "cd" * 32


def compiled_example() -> str:
    from services.codegen import compiler, emit
    from stratexec.backtest.v1 import backtest_pb2
    from tests.e2e.conftest import EXAMPLE

    params = backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2024-01-01", end_date="2024-12-31")
    return emit.emit(compiler.analyze(EXAMPLE, params))


def generator_conversation(fake: FakeAnthropic, tools: list, code: str) -> tuple[list, list]:
    """Answer the generator's calls as the services would, until it ends its turn; (tool calls, final message)."""
    client, history, calls = sdk(fake), [GENERATE_TASK], []
    results = {
        "search_code_templates": '{"templates": []}',
        "generate_vectorbt_code": json.dumps({"code_sha256": SHA, "lines": code.count("\n") + 1}),
        "validate_python_code": json.dumps({"valid": True, "code_sha256": SHA, "violations": []}),
        "read_generated_code": json.dumps({"code_sha256": SHA, "code": code}),
        "propose_vectorbt_code": json.dumps({"accepted": True, "code_sha256": PROPOSED_SHA, "compiled_sha256": SHA}),
    }
    while True:
        message = client.messages.create(model="claude-sonnet-4-6", max_tokens=1024, system="You are Code Generator.",
                                         tools=tools, messages=history, timeout=10)
        if message.stop_reason == "end_turn":
            return calls, message
        calls.append(message.content[-1])
        history += answered(message, results[message.content[-1].name])
        assert len(calls) < 10


def _names_back(tree: ast.AST) -> str:
    """The AST with the rewrite's renames undone, as text."""
    back = {new: old for old, new in RENAMES.items()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            node.id = back.get(node.id, node.id)
    return ast.dump(tree)


def test_without_the_proposal_tools_the_generator_answers_after_validating(fake):
    calls, final = generator_conversation(fake, GENERATOR_TOOLS, compiled_example())
    assert [c.name for c in calls] == ["search_code_templates", "generate_vectorbt_code", "validate_python_code"]
    assert json.loads(final.content[0].text) == {"code_sha256": SHA, "valid": True}


def test_offered_the_proposal_tools_it_reads_the_code_and_proposes_an_equivalent_rewrite(fake):
    code = compiled_example()
    calls, final = generator_conversation(fake, GENERATOR_TOOLS + PROPOSAL_TOOLS, code)

    assert [c.name for c in calls] == ["search_code_templates", "generate_vectorbt_code", "validate_python_code",
                                       "read_generated_code", "propose_vectorbt_code"]
    assert calls[3].input == {"code_sha256": SHA}
    proposed = calls[4].input["code"]
    assert proposed != code and "signal_frame = signals(" in proposed and "# Proposed by" in proposed
    assert proposed.startswith("#!/usr/bin/env python3\n")  # the shebang stays first
    # The same program: its syntax tree is the compiled one's once the renames are undone.
    assert _names_back(ast.parse(proposed)) == ast.dump(ast.parse(code))
    assert calls[4].input["rationale"]
    # It reports the code that runs, as propose_vectorbt_code said.
    assert json.loads(final.content[0].text) == {"code_sha256": PROPOSED_SHA, "valid": True}


def test_in_bad_proposal_mode_the_rewrite_is_subtly_different():
    code = compiled_example()
    bad = different_rewrite(code)
    assert "close <= 0.95 * sma_20" in code
    assert bad == code.replace("close <= 0.95 * sma_20", "close <= 0.94 * sma_20")
    # Without a decimal number in signals(), the fees change instead.
    no_decimal = 'PARAMS = {"fees": 0.001}\n\n\ndef signals(ohlc):\n    return ohlc["close"] > ohlc["open"]\n'
    assert different_rewrite(no_decimal) == no_decimal.replace("0.001", "0.002")
    assert "import os" in violating_rewrite(code) and "import os" not in code


@pytest.mark.parametrize("mode", ["different", "violating"])
def test_the_proposal_mode_is_chosen_at_construction_or_for_a_block(mode):
    code = compiled_example()
    with FakeAnthropic(api_key="test-key", proposal=mode) as fake:
        calls, _ = generator_conversation(fake, GENERATOR_TOOLS + PROPOSAL_TOOLS, code)
        assert calls[-1].input["code"] == REWRITES[mode](code)
        with fake.proposing("none"):
            calls, _ = generator_conversation(fake, GENERATOR_TOOLS + PROPOSAL_TOOLS, code)
            assert calls[-1].name == "validate_python_code"
        assert fake.proposal == mode
    with pytest.raises(ValueError):
        FakeAnthropic(proposal="sneaky")
