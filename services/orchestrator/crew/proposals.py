"""Code the Code Generator proposes instead of the compiled script (with a
language model only), and the decision to use it or not.

A proposal is untrusted code. It is used only when it passes the same
policy as the compiled script (codegen.ValidateCode) and, run in the
sandbox on this execution's params, gives the same result as the compiled
script run there too (see ``equivalence`` for what "the same" means and
why results are compared). Anything else, including a sandbox or codegen
that cannot be reached, rejects it: the compiled script runs, and the
execution goes on. Both outcomes are an event.
"""
from __future__ import annotations

import dataclasses
import hashlib

import grpc

from services.common import errors
from services.orchestrator.clients import Cancelled
from services.orchestrator.crew.context import ExecutionContext
from services.orchestrator.crew.equivalence import first_difference
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.sandbox.v1 import sandbox_pb2

MAX_PROPOSALS = 2  # each one costs up to two sandbox runs
MAX_VIOLATIONS_SHOWN = 3


class Rejected(Exception):
    """Why a proposal is not used, in words."""


@dataclasses.dataclass
class Decision:
    accepted: bool
    reason: str
    code_sha256: str  # of the proposal


def sha256(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _check_policy(ctx: ExecutionContext, code: str) -> None:
    try:
        reply = ctx.clients.call(ctx.clients.codegen.ValidateCode, codegen_pb2.ValidateCodeRequest(code=code),
                                 cancel=ctx.cancel)
    except grpc.RpcError as exc:
        raise Rejected(f"the code policy check failed: {errors.describe(errors.status_from_rpc_error(exc))}") from None
    if not reply.valid:
        shown = "; ".join(f"line {v.line}: {v.message}" for v in reply.violations[:MAX_VIOLATIONS_SHOWN])
        more = len(reply.violations) - MAX_VIOLATIONS_SHOWN
        raise Rejected(f"it breaks the code policy: {shown}" + (f" (and {more} more)" if more > 0 else ""))


def _run(ctx: ExecutionContext, code: str, which: str) -> backtest_pb2.BacktestResult:
    """Run ``code`` in the sandbox on the execution's params (never here: the code is untrusted)."""
    try:
        reply = ctx.run_script(code)
    except grpc.RpcError as exc:
        raise Rejected(f"{which} did not run: {errors.describe(errors.status_from_rpc_error(exc))}") from None
    if reply.outcome != sandbox_pb2.RUN_OUTCOME_SUCCEEDED:
        why = reply.error.message if reply.HasField("error") else "no result"
        raise Rejected(f"{which} failed in the sandbox ({sandbox_pb2.RunOutcome.Name(reply.outcome)}: {why})")
    return reply.result


def evaluate(ctx: ExecutionContext, code: str) -> Decision:
    """Decide on one proposal; never raises, except when the execution is cancelled."""
    digest = sha256(code)
    try:
        if len(ctx.proposals) >= MAX_PROPOSALS:
            raise Rejected(f"at most {MAX_PROPOSALS} proposals are checked per execution")
        if not code.strip():
            raise Rejected("the proposal is empty")
        _check_policy(ctx, code)
        proposed = _run(ctx, code, "the proposal")
        difference = first_difference(_run(ctx, ctx.compiled_code, "the compiled script"), proposed)
        if difference is not None:
            raise Rejected(f"its result differs from the compiled script's: {difference}")
        return Decision(True, f"equivalent to the compiled script ({len(proposed.trades)} trades identical)", digest)
    except Rejected as exc:
        return Decision(False, str(exc), digest)
    except Cancelled:
        raise
    except Exception as exc:  # a bug here must not fail the execution: the compiled script is there
        return Decision(False, f"the proposal could not be checked: {exc!r}", digest)


def propose(ctx: ExecutionContext, code: str, rationale: str) -> dict:
    """The proposal tool's body: decide, switch ``ctx.code`` when accepted, say so in the event log."""
    if not ctx.compiled_code:
        return {"accepted": False, "error": "call generate_vectorbt_code first: the compiled script is the reference"}
    if ctx.code_source == "proposed":
        return {"accepted": False, "code_sha256": ctx.code_sha256,
                "reason": "a proposal was already accepted: that code runs"}
    if sha256(code) == ctx.compiled_sha256:
        ctx.code_source_reason = "the proposal was the compiled script itself"
        ctx.log("info", "orchestrator", "the proposal is the compiled script itself; using the compiled script")
        return {"accepted": False, "code_sha256": ctx.code_sha256, "reason": "the proposal is the compiled script itself"}
    decision = evaluate(ctx, code)
    ctx.proposals.append({"code_sha256": decision.code_sha256, "accepted": decision.accepted,
                          "reason": decision.reason, "rationale": rationale[:300]})
    if decision.accepted:
        ctx.code, ctx.code_sha256, ctx.code_valid = code, decision.code_sha256, True
        ctx.save_code(ctx.execution_id, code, decision.code_sha256)
        ctx.code_source, ctx.code_source_reason = "proposed", decision.reason
        ctx.log("info", "orchestrator", f"using the proposed code: {decision.reason}")
    else:
        ctx.code_source_reason = f"proposal rejected: {decision.reason}"
        ctx.warn("orchestrator", f"proposal rejected: {decision.reason}; using the compiled script")
    return {"accepted": decision.accepted, "reason": decision.reason,
            "code_sha256": ctx.code_sha256,  # the code that runs: pass it to the Code Executor
            "compiled_sha256": ctx.compiled_sha256, "proposal_sha256": decision.code_sha256}
