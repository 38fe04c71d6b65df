"""With an API key the agents run on Claude through CrewAI's Anthropic
support: the orchestrator's Anthropic client is pointed (ANTHROPIC_BASE_URL)
at a fake Messages API on loopback, and a whole execution goes through it,
with native tool calls out and tool results back.

For an OptimizeStrategy the fake's Strategy Optimizer narrows the grid once after the first sweep.

On this path the Code Generator may propose code instead of the compiled
script: the fake proposes an equivalent rewrite by default (accepted), and,
for one execution each, a subtly different script and one that breaks the
code policy (both rejected: the compiled script runs)."""
from __future__ import annotations

import hashlib
import json

import grpc
import pytest
from google.protobuf import json_format

from services.stack import start_stack
from stratexec.codegen.v1 import codegen_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client, ClientError
from tests.e2e.conftest import EXAMPLE, btc_2024
from tests.fakes.anthropic_server import ANALYZER, EXECUTOR, GENERATOR, OPTIMIZER, FakeAnthropic

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)

S = execution_pb2
R = codegen_pb2.ParameterRange
API_KEY = "test-key"
MODEL = "claude-sonnet-4-6"  # not the default: shows STRATEXEC_LLM_MODEL is honoured
PROPOSAL_TOOLS = ["read_generated_code", "propose_vectorbt_code"]  # held with a language model only
DESIGNED_TOOLS = ["analyze_strategy", "search_strategy_memory", "get_user_preferences",
                  "search_code_templates", "generate_vectorbt_code", "validate_python_code", *PROPOSAL_TOOLS,
                  "execute_python_code", "store_strategy_memory"]


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


def run_example(claude, proposal: str):
    """The example strategy on BTC for 2024, run to its end on "Claude" proposing ``proposal`` code;
    (client, execution id, events, the requests the fake answered meanwhile). One execution at a time."""
    services, fake = claude
    client = Client(services["orchestrator"].address)
    before = len(fake.recorded(path=None))
    with fake.proposing(proposal):
        execution = client.execute(EXAMPLE, btc_2024())
        events = list(client.watch(execution.id))
    return client, execution.id, events, fake.recorded(path=None)[before:]


@pytest.fixture(scope="module")
def finished(claude):
    """The example run with the fake's default proposal: an equivalent rewrite of the compiled script."""
    return run_example(claude, "equivalent")


@pytest.fixture(scope="module")
def different(claude):
    """The example run with a subtly different proposal (0.95 -> 0.94 in the entry rule)."""
    return run_example(claude, "different")


@pytest.fixture(scope="module")
def violating(claude):
    """The example run with a proposal that imports os."""
    return run_example(claude, "violating")


def tool_steps(events) -> list:
    return [e.agent_step for e in events if e.type == S.EVENT_TYPE_AGENT_STEP and e.agent_step.tool]


def step(events, tool: str):
    return next(s for s in tool_steps(events) if s.tool == tool)


def logs(events, source: str = "orchestrator") -> list:
    return [e.log for e in events if e.type == S.EVENT_TYPE_LOG and e.log.source == source]


def insights_of(client, execution_id) -> dict:
    return json_format.MessageToDict(client.get(execution_id).agent_insights)


def test_the_execution_completes_with_trades_and_names_the_claude_model(finished):
    client, execution_id, events, _ = finished
    execution = client.get(execution_id)

    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, execution.error_message
    assert execution.status == S.EXECUTION_STATUS_COMPLETED
    assert client.results(execution_id).result.metrics.trades >= 1
    insights = json_format.MessageToDict(execution.agent_insights)
    assert insights["llm"] == MODEL  # Claude, not "stratexec-offline-planner"
    assert "SMA" in insights["interpretation"][0]["formula"]


def test_every_agent_asked_the_fake_messages_api_and_got_its_tool_results_back(finished):
    client, execution_id, _, everything = finished  # with CrewAI's count_tokens preflights
    assert all(r.error is None for r in everything), [r.error for r in everything if r.error]
    requests = [r for r in everything if r.path == "/v1/messages"]

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
    generator_tools = {name for r in requests if r.agent == GENERATOR for name in r.tool_names}
    assert generator_tools == {"search_code_templates", "generate_vectorbt_code", "validate_python_code", *PROPOSAL_TOOLS}

    # Each agent's last request carries its whole conversation: its tool_use blocks,
    # each answered by a tool_result block with the service's reply.
    last = {r.agent: r for r in requests}
    calls = [call for agent in (ANALYZER, GENERATOR, EXECUTOR) for call in last[agent].tool_calls]
    assert [c.name for c in calls] == DESIGNED_TOOLS
    assert all(c.result is not None and not c.is_error and not c.result.startswith("ERROR") for c in calls)
    by_name = {c.name: c for c in calls}

    # The code the sandbox ran is the code the generator settled on, passed along by the model: the
    # compiled script was generated and validated, then the model read it and proposed its own version,
    # which was accepted; the executor ran the proposal.
    code_sha = client.code(execution_id).sha256
    compiled_sha = json.loads(by_name["generate_vectorbt_code"].result)["code_sha256"]
    assert by_name["validate_python_code"].input == {"code_sha256": compiled_sha}
    assert by_name["read_generated_code"].input == {"code_sha256": compiled_sha}
    assert json.loads(by_name["read_generated_code"].result)["code_sha256"] == compiled_sha
    decision = json.loads(by_name["propose_vectorbt_code"].result)
    assert decision["accepted"] is True and decision["code_sha256"] == code_sha != compiled_sha
    assert by_name["execute_python_code"].input == {"code_sha256": code_sha}
    run = json.loads(by_name["execute_python_code"].result)
    assert run["outcome"] == "RUN_OUTCOME_SUCCEEDED"
    assert run["metrics"]["trades"] == client.results(execution_id).result.metrics.trades
    assert json.loads(by_name["store_strategy_memory"].result)["stored"] is True


def test_the_claude_steps_are_events_like_the_offline_ones(finished):
    _, _, events, _ = finished

    steps = [e.agent_step for e in events if e.type == S.EVENT_TYPE_AGENT_STEP]
    assert {s.agent for s in steps} == {ANALYZER, GENERATOR, EXECUTOR}
    assert [s.tool for s in tool_steps(events)] == DESIGNED_TOOLS
    assert [s.agent for s in tool_steps(events)] == [ANALYZER] * 3 + [GENERATOR] * 5 + [EXECUTOR] * 2
    run = step(events, "execute_python_code")
    assert "code_sha256" in run.arguments and "RUN_OUTCOME_SUCCEEDED" in run.result
    # The proposal's step names the proposal by its sha256 and the model's rationale, not the whole code.
    proposal = step(events, "propose_vectorbt_code")
    assert "code_sha256" in proposal.arguments and "clearer variable names" in proposal.arguments
    assert "import" not in proposal.arguments


# -- proposals ---------------------------------------------------------------------------------------------------------

def test_an_equivalent_proposal_is_used_and_the_event_log_says_so(finished):
    client, execution_id, events, _ = finished
    results = client.results(execution_id).result

    said = [log for log in logs(events) if "proposed code" in log.message]
    assert [(log.level, log.message) for log in said] == [
        (S.LOG_LEVEL_INFO, f"using the proposed code: equivalent to the compiled script ({len(results.trades)} trades identical)")]
    assert not [log for log in logs(events) if log.level == execution_pb2.LOG_LEVEL_WARNING]
    # GetGeneratedCode returns the proposal (the fake's rewrite), and its sha256 is the code's.
    code = client.code(execution_id)
    assert "# Proposed by the Code Generator" in code.code and "signal_frame = signals(" in code.code
    assert hashlib.sha256(code.code.encode()).hexdigest() == code.sha256
    insights = insights_of(client, execution_id)
    assert insights["code_source"] == "proposed" and insights["code_sha256"] == code.sha256
    assert insights["compiled_code_sha256"] != code.sha256
    assert insights["code_source_reason"].startswith("equivalent to the compiled script")
    assert [p["accepted"] for p in insights["code_proposals"]] == [True]


def test_the_accepted_proposal_gives_the_compiled_scripts_results(finished, different):
    """The rejected execution ran the compiled script on the same params: its results are the reference."""
    client, accepted_id, _, _ = finished
    _, compiled_id, _, _ = different
    assert insights_of(client, compiled_id)["code_source"] == "compiled"
    assert client.code(compiled_id).sha256 == insights_of(client, accepted_id)["compiled_code_sha256"]

    accepted, compiled = client.results(accepted_id).result, client.results(compiled_id).result
    assert accepted.metrics.trades >= 1
    assert accepted.metrics == compiled.metrics
    assert list(accepted.trades) == list(compiled.trades)
    assert list(accepted.equity) == list(compiled.equity)


def test_a_proposal_with_different_results_is_rejected_and_the_compiled_script_runs(different):
    client, execution_id, events, requests = different
    execution = client.get(execution_id)
    assert execution.status == S.EXECUTION_STATUS_COMPLETED, execution.error_message
    generator = [r for r in requests if r.path == "/v1/messages" and r.agent == GENERATOR][-1]
    proposed = generator.tool_calls[-1]
    assert proposed.name == "propose_vectorbt_code" and "close <= 0.94 * sma_20" in proposed.input["code"]

    warnings = [log.message for log in logs(events) if log.level == execution_pb2.LOG_LEVEL_WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("proposal rejected: its result differs from the compiled script's: ")
    assert warnings[0].endswith("; using the compiled script")
    assert "trade" in warnings[0]  # the first difference: 0.94 instead of 0.95 changes the trades
    assert not [log for log in logs(events) if "using the proposed code" in log.message]

    code = client.code(execution_id)
    insights = insights_of(client, execution_id)
    assert code.sha256 == insights["compiled_code_sha256"] == insights["code_sha256"]
    assert "0.95 * sma_20" in code.code and "Proposed by the Code Generator" not in code.code
    assert step(events, "execute_python_code").arguments == json.dumps({"code_sha256": code.sha256})
    assert insights["code_source"] == "compiled"
    assert insights["code_source_reason"].startswith("proposal rejected: its result differs")
    assert [p["accepted"] for p in insights["code_proposals"]] == [False]


def test_a_proposal_that_breaks_the_code_policy_is_rejected_and_the_compiled_script_runs(violating):
    client, execution_id, events, _ = violating
    execution = client.get(execution_id)
    assert execution.status == S.EXECUTION_STATUS_COMPLETED, execution.error_message
    assert client.results(execution_id).result.metrics.trades >= 1

    warnings = [log.message for log in logs(events) if log.level == execution_pb2.LOG_LEVEL_WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("proposal rejected: it breaks the code policy: line ")
    assert "'os'" in warnings[0] and warnings[0].endswith("; using the compiled script")

    code = client.code(execution_id)
    insights = insights_of(client, execution_id)
    assert "import os" not in code.code and code.sha256 == insights["compiled_code_sha256"]
    assert insights["code_source"] == "compiled"


def test_with_claude_the_optimizer_narrows_the_grid_once_and_every_trial_counts(claude):
    """The Strategy Optimizer on "Claude" sweeps the requested grid, then narrows it around the winner once
    (entry.window one unit either side): the two new combinations are trials too, the model's."""
    services, fake = claude
    client = Client(services["orchestrator"].address)
    params = btc_2024()
    params.start_date = "2021-01-01"
    before = len(fake.recorded())
    execution = client.optimize(EXAMPLE, params, [R(name="entry.window", start=10, stop=60, step=5),
                                                  R(name="tp.target_pct", values=[4, 7, 10])], walk_forward_segments=3)
    events = list(client.watch(execution.id))
    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, client.get(execution.id).error_message
    assert OPTIMIZER in {r.agent for r in fake.recorded()[before:]}
    sweeps = [s for s in tool_steps(events) if s.tool == "run_parameter_sweep"]
    assert [s.agent for s in sweeps] == [OPTIMIZER, OPTIMIZER]
    assert "the request's grid" in sweeps[0].arguments and "entry.window" in sweeps[1].arguments
    summary = client.optimization(execution.id).summary
    window = next(p for p in summary.parameters if p.name == "entry.window")
    assert len(window.values) == 3 and window.values[1] - window.values[0] == 1  # the narrowed grid
    assert (summary.statistics.trials, summary.statistics.trials_in_this_execution) == (33 + 2, 33 + 3)
    assert f"after {33 + 2} trials" in summary.statistics.dsr_verdict
    assert {p.tool for p in tool_steps(events)} >= {"read_trial_ledger", "run_walk_forward", "execute_python_code"}


# -- a rule the grammar does not understand -----------------------------------------------------------------------

OVERSOLD_RULE = "Buy when the stock looks oversold"  # the fake reads "oversold" as RSI(14) < 30
READING = [{"indicator": "rsi", "op": "<", "ref": 30}]


def oversold(entry_meta: dict) -> dict:
    """The example strategy with its entry rule replaced."""
    return {"nodes": [{"id": "entry", "type": "entry_condition", "meta": entry_meta}, *EXAMPLE["nodes"][1:]]}


def bad_request(status) -> list:
    from google.rpc import error_details_pb2

    found = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)).Unpack(found)
    return list(found.field_violations)


def test_a_rule_claude_had_to_interpret_fails_with_its_proposal_attached_for_the_user_to_resubmit(claude):
    """Never applied silently: the Strategy Analyzer proposes a structured condition, and the execution
    fails naming the rule, with the proposal in its error. Nothing runs in the sandbox."""
    from services.common import errors

    services, _ = claude
    client = Client(services["orchestrator"].address)
    execution = client.execute(oversold({"rules": [OVERSOLD_RULE]}), btc_2024())  # accepted at submit: a model is here
    events = list(client.watch(execution.id))
    failed = client.get(execution.id)
    assert failed.status == S.EXECUTION_STATUS_FAILED
    assert failed.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info = errors.error_info(failed.error)
    assert info.reason == "RULE_NOT_UNDERSTOOD"
    assert (info.metadata["node_id"], info.metadata["rule"], info.metadata["proposed_by"]) == ("entry", OVERSOLD_RULE, "model")
    assert json.loads(info.metadata["proposed_conditions"]) == READING
    assert "RSI" in info.metadata["proposed_formula"] and "30" in info.metadata["proposed_formula"]
    [violation] = bad_request(failed.error)
    assert violation.field == "nodes[0].meta.rules[0]" and "resubmit them as meta.conditions" in violation.description
    assert OVERSOLD_RULE in failed.error_message and "accept_interpreted_rules" in failed.error_message
    proposal = step(events, "propose_rule_interpretation")
    assert proposal.agent == ANALYZER and "rsi" in proposal.arguments
    statuses = [e.status for e in events if e.type == S.EVENT_TYPE_STATUS_CHANGED]
    assert S.EXECUTION_STATUS_EXECUTING not in statuses and S.EXECUTION_STATUS_GENERATING_CODE not in statuses
    with pytest.raises(ClientError) as no_code:  # nothing was compiled from the proposal, nothing ran
        client.code(execution.id)
    assert no_code.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_with_accept_interpreted_rules_claudes_reading_runs_shown_as_the_models(claude):
    """The request accepts interpreted rules: the proposal runs, marked as the model's in the analysis and
    warned about; its trades are those of the same strategy resubmitted with the proposal as meta.conditions."""
    services, _ = claude
    client = Client(services["orchestrator"].address)
    params = btc_2024()
    params.start_date = "2022-01-01"
    execution = client.execute(oversold({"rules": [OVERSOLD_RULE]}), params, accept_interpreted_rules=True)
    events = list(client.watch(execution.id))
    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, client.get(execution.id).error_message
    done = client.get(execution.id)
    [entry] = [r for r in done.insights.interpretation if r.node_id == "entry"]
    assert entry.interpreted_by_model and entry.rule == OVERSOLD_RULE
    assert "RSI" in entry.formula and "< 30" in entry.formula and "language model" in entry.interpretation
    assert any(OVERSOLD_RULE in w and "language model" in w for w in done.insights.warnings)
    assert any(OVERSOLD_RULE in line.message and "accept_interpreted_rules" in line.message for line in logs(events))

    resubmitted = client.execute(oversold({"conditions": READING}), params)
    assert list(client.watch(resubmitted.id))[-1].status == S.EXECUTION_STATUS_COMPLETED
    ours, theirs = client.results(execution.id).result, client.results(resubmitted.id).result
    assert len(ours.trades) > 0
    assert [(t.entry_time, t.exit_time, t.pnl) for t in ours.trades] == \
        [(t.entry_time, t.exit_time, t.pnl) for t in theirs.trades]
    assert ours.metrics.total_return == theirs.metrics.total_return
