"""Code the Code Generator proposes: the comparison of two backtest results
(on small synthetic results), and the decision the proposal tool makes, with
stand-ins for codegen and the sandbox (no services, no code runs here)."""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import grpc
import pytest

from services.common import code_policy
from services.orchestrator.clients import Cancelled
from services.orchestrator.crew import proposals
from services.orchestrator.crew.context import ExecutionContext
from services.orchestrator.crew.equivalence import first_difference
from services.orchestrator.crew.tools import (MAX_CODE_OBSERVATION, MAX_OBSERVATION, ProposeCodeTool, ReadCodeTool,
                                              tools_for)
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.sandbox.v1 import sandbox_pb2

B = backtest_pb2
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]


def result(equity=(10_000.0, 10_100.0, 10_050.0, 10_200.0), trades=None, **metrics) -> B.BacktestResult:
    trades = trades if trades is not None else [trade()]
    values = {"total_return": (equity[-1] / equity[0] - 1) * 100, "trades": sum(t.status == B.TRADE_STATUS_CLOSED
                                                                                  for t in trades),
              "final_value": equity[-1], "initial_value": equity[0], "win_rate": 100.0, **metrics}
    values = {k: v for k, v in values.items() if v is not None}
    return B.BacktestResult(
        metrics=B.Metrics(**values),
        equity=[B.EquityPoint(time=d, value=v) for d, v in zip(DAYS, equity)],
        benchmark_equity=[B.EquityPoint(time=d, value=10_000.0 + i) for i, d in enumerate(DAYS)],
        trades=trades,
        data=[B.DataSource(provider="bundled", symbol="BTC-USD", first_time=DAYS[0], last_time=DAYS[-1], bars=4,
                           sha256="ab" * 32)])


def trade(symbol="BTC-USD", entry="2024-01-01", exit="2024-01-03", status=B.TRADE_STATUS_CLOSED, pnl=50.0,
          entry_price=100.0, exit_price=101.0, size=99.0) -> B.Trade:
    return B.Trade(symbol=symbol, direction=B.TRADE_DIRECTION_LONG, entry_time=entry, exit_time=exit, entry_price=entry_price,
                   exit_price=exit_price, size=size, pnl=pnl, return_pct=0.5, status=status)


# -- the comparison ----------------------------------------------------------------------------------------------------

def test_identical_results_are_equivalent():
    assert first_difference(result(), result()) is None


def test_float_noise_in_the_last_bits_is_equivalent_but_a_cent_is_not():
    noisy = result(equity=(10_000.0, 10_100.0 * (1 + 1e-13), 10_050.0, 10_200.0))
    assert first_difference(result(), noisy) is None

    off = result(equity=(10_000.0, 10_100.01, 10_050.0, 10_200.0))
    assert first_difference(result(), off) == "equity at 2024-01-02 is 10100.010000, the compiled script's 10100.000000"


def test_a_trade_that_exits_another_day_is_the_first_difference():
    moved = result(trades=[trade(exit="2024-01-04")])
    assert first_difference(result(), moved) == (
        "trade 1: exit time '2024-01-04', the compiled script's '2024-01-03' "
        "(BTC-USD entered 2024-01-01, exited 2024-01-03)")


def test_an_open_trade_is_not_a_closed_one():
    still_open = result(trades=[trade(exit="", status=B.TRADE_STATUS_OPEN)])
    assert "exit time ''" in first_difference(result(), still_open)
    same_times = result(trades=[trade(status=B.TRADE_STATUS_OPEN)])
    assert first_difference(result(), same_times).startswith("trade 1: status 'open', the compiled script's 'closed'")


def test_an_extra_or_a_missing_trade_is_named():
    two = [trade(), trade(entry="2024-01-04", exit="", status=B.TRADE_STATUS_OPEN)]
    assert first_difference(result(), result(trades=two)) == (
        "2 trades, the compiled script's 1; an extra trade: BTC-USD entered 2024-01-04, still open")
    assert first_difference(result(trades=two), result()) == (
        "1 trades, the compiled script's 2; a missing trade: BTC-USD entered 2024-01-04, still open")


def test_the_order_of_the_trades_does_not_matter():
    a, b = trade(symbol="BTC-USD"), trade(symbol="ETH-USD")
    assert first_difference(result(trades=[a, b]), result(trades=[b, a])) is None


def test_same_trade_times_with_other_costs_are_caught_in_the_trades():
    """A proposal that changes fees or sizing keeps the signals but not the fills or the PnL."""
    assert first_difference(result(), result(trades=[trade(pnl=49.9)])).endswith("pnl 49.9, the compiled script's 50")
    assert "size 49.5" in first_difference(result(), result(trades=[trade(size=49.5)]))


def test_no_trades_and_other_equity_is_still_a_difference():
    flat, other = result(trades=[]), result(trades=[], equity=(10_000.0, 9_990.0, 9_990.0, 9_990.0))
    assert first_difference(flat, flat) is None
    assert first_difference(flat, other).startswith("equity at 2024-01-02 is 9990")


def test_curves_of_other_lengths_or_bars_differ():
    short = result()
    del short.equity[-1]
    assert first_difference(result(), short) == "equity has 3 bars, the compiled script's 4"
    shifted = result()
    shifted.equity[1].time = "2024-01-05"
    assert first_difference(result(), shifted) == "equity has a bar at 2024-01-05 where the compiled script's has 2024-01-02"


def test_the_benchmark_metrics_and_data_count_too():
    bench = result()
    bench.benchmark_equity[2].value += 5
    assert first_difference(result(), bench).startswith("benchmark equity at 2024-01-03")
    assert first_difference(result(), result(win_rate=None)) == "metric win_rate is unset, the compiled script's is not"
    assert first_difference(result(), result(cagr=1.0)) == "metric cagr is 1, the compiled script's 0"
    other_data = result()
    other_data.data[0].sha256 = "cd" * 32
    assert first_difference(result(), other_data).startswith("it read other data")


# -- the decision --------------------------------------------------------------------------------------------------------

COMPILED = "import vectorbt as vbt\n\n\ndef main():\n    pf = 1\n    return pf\n"
REWRITE = "import vectorbt as vbt\n\n\ndef main():\n    # the same, in other words\n    portfolio = 1\n    return portfolio\n"
DIFFERENT = "import vectorbt as vbt\n\n\ndef main():\n    portfolio = 2\n    return portfolio\n"
BROKEN = "import os\n" + REWRITE


class RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class Services:
    """codegen.ValidateCode with the real policy; sandbox.ExecuteCode answering from ``runs`` (code -> response
    or exception); every call recorded."""

    def __init__(self, runs: dict):
        self.runs = runs
        self.calls: list[tuple[str, str]] = []
        self.codegen = SimpleNamespace(ValidateCode="ValidateCode")
        self.sandbox = SimpleNamespace(ExecuteCode="ExecuteCode")
        self.config = SimpleNamespace(sandbox_timeout_s=60.0)

    def call(self, method, request, *, timeout=None, cancel=None):
        self.calls.append((method, request.code))
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if method == "ValidateCode":
            found = code_policy.check_code(request.code)
            return codegen_pb2.ValidateCodeResponse(valid=not found, violations=[
                B.CodeViolation(rule=v.rule, line=v.line, column=v.column, message=v.message) for v in found])
        reply = self.runs[request.code]
        if isinstance(reply, Exception):
            raise reply
        return reply


class Events:
    def __init__(self):
        self.lines: list[tuple[str, str, str]] = []

    def log_line(self, execution_id, status, level, source, message):
        self.lines.append((level, source, message))


def ran(r: B.BacktestResult) -> sandbox_pb2.ExecuteCodeResponse:
    return sandbox_pb2.ExecuteCodeResponse(outcome=sandbox_pb2.RUN_OUTCOME_SUCCEEDED, result=r)


def sha(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@pytest.fixture
def make_ctx():
    def make(runs: dict, compiled: bool = True) -> ExecutionContext:
        saved = []
        ctx = ExecutionContext(execution_id="exec-1", user_id="u", schema={}, params=B.BacktestParams(symbols=["BTC"]),
                               clients=Services(runs), events=Events(), save_code=lambda *a: saved.append(a),
                               status="GENERATING_CODE", proposals_enabled=True)
        ctx.saved = saved
        if compiled:
            ctx.code = ctx.compiled_code = COMPILED
            ctx.code_sha256 = ctx.compiled_sha256 = sha(COMPILED)
            ctx.code_valid = True
        return ctx

    return make


def test_an_equivalent_proposal_becomes_the_code_that_runs(make_ctx):
    ctx = make_ctx({COMPILED: ran(result()), REWRITE: ran(result())})

    answer = proposals.propose(ctx, REWRITE, "clearer names")

    assert answer["accepted"] is True and answer["code_sha256"] == sha(REWRITE) == ctx.code_sha256
    assert (ctx.code, ctx.code_valid, ctx.code_source) == (REWRITE, True, "proposed")
    assert ctx.saved == [("exec-1", REWRITE, sha(REWRITE))]
    assert ctx.events.lines == [("info", "orchestrator",
                                 "using the proposed code: equivalent to the compiled script (1 trades identical)")]
    assert ctx.error is None and ctx.warnings == []
    # The proposal was checked by the policy, then both scripts ran in the sandbox.
    assert ctx.clients.calls == [("ValidateCode", REWRITE), ("ExecuteCode", REWRITE), ("ExecuteCode", COMPILED)]
    # The Code Executor then executes the proposal: its run is the one already made (two runs, not three).
    assert ctx.run_script(REWRITE).result == result() and len(ctx.clients.calls) == 3
    insights = ctx.code_insights()
    assert insights["code_source"] == "proposed" and insights["compiled_code_sha256"] == sha(COMPILED)
    assert insights["code_proposals"][0]["rationale"] == "clearer names"


def test_a_different_proposal_is_rejected_with_its_first_difference(make_ctx):
    ctx = make_ctx({COMPILED: ran(result()), DIFFERENT: ran(result(trades=[trade(exit="2024-01-04")]))})

    answer = proposals.propose(ctx, DIFFERENT, "")

    assert answer["accepted"] is False and answer["code_sha256"] == sha(COMPILED)
    assert (ctx.code, ctx.code_source) == (COMPILED, "compiled") and ctx.saved == []
    [(level, source, message)] = ctx.events.lines
    assert (level, source) == ("warning", "orchestrator")
    assert message == ("proposal rejected: its result differs from the compiled script's: trade 1: exit time "
                       "'2024-01-04', the compiled script's '2024-01-03' (BTC-USD entered 2024-01-01, exited "
                       "2024-01-03); using the compiled script")
    assert ctx.code_insights()["code_source_reason"].startswith("proposal rejected: its result differs")
    assert ctx.error is None


def test_a_policy_violation_is_rejected_before_anything_runs(make_ctx):
    ctx = make_ctx({})

    answer = proposals.propose(ctx, BROKEN, "")

    assert answer["accepted"] is False
    assert ctx.events.lines[0][2].startswith("proposal rejected: it breaks the code policy: line 1: import of 'os'")
    assert [method for method, _ in ctx.clients.calls] == ["ValidateCode"]
    assert ctx.code == COMPILED and ctx.error is None


@pytest.mark.parametrize("proposal_run, reason", [
    (RpcError(grpc.StatusCode.UNAVAILABLE, "no sandbox"), "the proposal did not run: UNAVAILABLE: no sandbox"),
    (sandbox_pb2.ExecuteCodeResponse(outcome=sandbox_pb2.RUN_OUTCOME_TIMED_OUT),
     "the proposal failed in the sandbox (RUN_OUTCOME_TIMED_OUT: no result)"),
])
def test_a_proposal_that_does_not_run_is_rejected_and_never_fails_the_execution(make_ctx, proposal_run, reason):
    ctx = make_ctx({REWRITE: proposal_run})

    answer = proposals.propose(ctx, REWRITE, "")

    assert answer == {"accepted": False, "reason": reason, "code_sha256": sha(COMPILED),
                      "compiled_sha256": sha(COMPILED), "proposal_sha256": sha(REWRITE)}
    assert ctx.error is None and ctx.code == COMPILED
    assert ctx.events.lines == [("warning", "orchestrator", f"proposal rejected: {reason}; using the compiled script")]


def test_a_compiled_script_that_does_not_run_rejects_the_proposal(make_ctx):
    ctx = make_ctx({REWRITE: ran(result()), COMPILED: RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")})
    assert proposals.propose(ctx, REWRITE, "")["reason"] == "the compiled script did not run: RESOURCE_EXHAUSTED: busy"
    assert ctx.error is None and ctx.code == COMPILED


def test_the_compiled_script_runs_once_and_proposals_are_bounded(make_ctx):
    ctx = make_ctx({COMPILED: ran(result()), DIFFERENT: ran(result(equity=(10_000.0, 1.0, 1.0, 1.0))),
                    BROKEN: ran(result())})

    for _ in range(proposals.MAX_PROPOSALS):
        assert proposals.propose(ctx, DIFFERENT, "")["accepted"] is False
    assert proposals.propose(ctx, REWRITE, "")["reason"] == (
        f"at most {proposals.MAX_PROPOSALS} proposals are checked per execution")

    assert [code for method, code in ctx.clients.calls if method == "ExecuteCode"].count(COMPILED) == 1
    assert len(ctx.proposals) == proposals.MAX_PROPOSALS + 1 and ctx.code == COMPILED


def test_once_a_proposal_is_accepted_or_when_it_is_the_compiled_script_nothing_more_runs(make_ctx):
    ctx = make_ctx({COMPILED: ran(result()), REWRITE: ran(result())})
    assert proposals.propose(ctx, COMPILED, "")["reason"] == "the proposal is the compiled script itself"
    assert ctx.clients.calls == [] and ctx.code_source == "compiled"

    assert proposals.propose(ctx, REWRITE, "")["accepted"] is True
    calls = len(ctx.clients.calls)
    again = proposals.propose(ctx, DIFFERENT, "")
    assert again["accepted"] is False and again["code_sha256"] == sha(REWRITE)
    assert len(ctx.clients.calls) == calls and ctx.code == REWRITE


def test_a_proposal_before_the_compiled_script_exists_is_refused_without_an_event(make_ctx):
    ctx = make_ctx({}, compiled=False)
    assert "call generate_vectorbt_code first" in proposals.propose(ctx, REWRITE, "")["error"]
    assert ctx.events.lines == [] and ctx.clients.calls == []


def test_a_cancel_still_ends_the_check(make_ctx):
    ctx = make_ctx({COMPILED: ran(result()), REWRITE: ran(result())})
    ctx.cancel.set()
    with pytest.raises(Cancelled):
        proposals.evaluate(ctx, REWRITE)
    # Through the tool, the cancel is reported like any tool's, and no decision is recorded.
    assert ProposeCodeTool(ctx=ctx)._run(code=REWRITE).startswith("ERROR: the execution was cancelled")
    assert ctx.code == COMPILED and ctx.events.lines == []


def test_a_broken_comparison_rejects_instead_of_failing(make_ctx, monkeypatch):
    ctx = make_ctx({COMPILED: ran(result()), REWRITE: ran(result())})
    monkeypatch.setattr(proposals, "first_difference", lambda *a: 1 / 0)
    answer = proposals.propose(ctx, REWRITE, "")
    assert answer["reason"] == "the proposal could not be checked: ZeroDivisionError('division by zero')"
    assert ctx.error is None and ctx.code == COMPILED


def test_only_a_language_model_gets_the_proposal_tools(make_ctx):
    ctx = make_ctx({})
    names = lambda tools: [t.name for t in tools["generator"]]  # noqa: E731
    assert names(tools_for(ctx)) == ["search_code_templates", "generate_vectorbt_code", "validate_python_code"]
    assert names(tools_for(ctx, with_proposals=True))[3:] == ["read_generated_code", "propose_vectorbt_code"]


def test_the_compiled_script_can_be_read_whole_or_not_at_all(make_ctx):
    ctx = make_ctx({})
    ctx.code = ctx.compiled_code = COMPILED + "# padding\n" * 800  # longer than other tools' observations
    ctx.code_sha256 = ctx.compiled_sha256 = sha(ctx.compiled_code)
    shown = json.loads(ReadCodeTool(ctx=ctx)._run(code_sha256=ctx.compiled_sha256))
    assert len(ctx.compiled_code) > MAX_OBSERVATION and shown["code"] == ctx.compiled_code
    assert "call generate_vectorbt_code first" in ReadCodeTool(ctx=ctx)._run(code_sha256="0" * 64)
    too_long = COMPILED + "# \"quoted\"\n" * 5000  # under the cap as text, over it as JSON
    assert len(too_long) < MAX_CODE_OBSERVATION < len(json.dumps(too_long))
    ctx.code = ctx.compiled_code = too_long
    ctx.code_sha256 = ctx.compiled_sha256 = sha(too_long)
    answer = json.loads(ReadCodeTool(ctx=ctx)._run(code_sha256=sha(too_long)))
    assert answer["error"].startswith("the script is too long to show")
