"""The crew's tools. Each is a CrewAI tool whose body is a gRPC call to the
service that owns the work; results go back to the agent as JSON text and
into the execution context as artifacts.

A fatal failure (a rule codegen rejects, a run the sandbox fails) is
recorded on the context and reported to the agent as ``ERROR: ...``;
memory is best effort: when it is down, the execution goes on with a
warning event.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable

import grpc
from crewai.tools import BaseTool
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field

from services.common import errors
from services.orchestrator import indicator_memory
from services.orchestrator.clients import Cancelled
from services.orchestrator.convert import struct
from services.orchestrator.crew import interpretations, proposals
from services.orchestrator.crew.context import ExecutionContext
from services.orchestrator.research import outcome
from services.orchestrator.db.repository import LeaseLost
from services.orchestrator.silent_rules import never_closed_warnings, no_trade_warning
from services.orchestrator.warmup import warmup_shortfalls
from stratexec.codegen.v1 import codegen_pb2
from stratexec.memory.v1 import memory_pb2
from stratexec.sandbox.v1 import sandbox_pb2

MAX_OBSERVATION = 4000
MAX_CODE_OBSERVATION = 64_000  # read_generated_code shows the whole script, never a cut one


class NoArgs(BaseModel):
    pass


class QueryArgs(BaseModel):
    query: str = Field(description="What to look for, in words: the strategy's rules, indicators and asset")


class CodeRefArgs(BaseModel):
    code_sha256: str = Field(description="sha256 of the generated code, as generate_vectorbt_code returned it")


class ProposeArgs(BaseModel):
    code: str = Field(description="The complete script to run instead of the compiled one: standalone, with the same "
                                  "PARAMS, signals(ohlc) and main() that calls stratexec_runtime.report")
    rationale: str = Field(default="", description="What the proposal changes and why its results stay the same")


class StoreArgs(BaseModel):
    note: str = Field(default="", description="A short lesson to remember about this strategy and its result")


class ContextTool(BaseTool):
    """A tool bound to one execution."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    ctx: Any = Field(default=None, exclude=True)
    # Called with (tool name, arguments, result) after each call, when the agent step is not
    # reported by CrewAI's step callback (native tool calling, as with Claude).
    on_step: Any = Field(default=None, exclude=True)
    # Tools that record what happened still run after the execution failed.
    after_failure: bool = False
    max_observation: int = MAX_OBSERVATION

    def run_step(self, body: Callable[[], dict], arguments: dict | None = None) -> str:
        result = self._run_body(body)[:self.max_observation]
        self.ctx.last_tool_result = result  # the step event shows this, not CrewAI's observation with its prompt text
        if self.on_step is not None:
            self.on_step(self.name, arguments or {}, result)
        return result

    def _run_body(self, body: Callable[[], dict]) -> str:
        ctx: ExecutionContext = self.ctx
        started = time.monotonic()
        try:
            if ctx.cancel.is_set():
                raise Cancelled()
            if ctx.error is not None and not self.after_failure:
                return f"ERROR: the execution already failed: {errors.describe(ctx.error)}"
            result = json.dumps(body(), default=str)
        except Cancelled:
            result = "ERROR: the execution was cancelled"
        except LeaseLost:  # another replica runs this execution now (save_code is fenced too)
            ctx.lose_lease()
            result = "ERROR: another replica took this execution over"
        except grpc.RpcError as exc:
            result = f"ERROR: {errors.describe(ctx.fail_rpc(self.service_name, exc))}"
        except Exception as exc:  # a bug or a broken reply: fail the execution, loudly
            status = errors.make_status(grpc.StatusCode.INTERNAL, f"{self.name}: {exc!r}", reason="TOOL_FAILED")
            ctx.fail(status)
            result = f"ERROR: {errors.describe(status)}"
        finally:
            ctx.last_tool_ms = (time.monotonic() - started) * 1000
        return result

    service_name: str = "orchestrator"


def _analysis_summary(analysis: codegen_pb2.StrategyAnalysis) -> dict:
    return {
        "summary": analysis.summary,
        "rules": [{"node": r.node_id, "rule": r.rule, "formula": r.formula} for r in analysis.rules],
        "indicators": list(analysis.indicators),
        "symbols": list(analysis.symbols),
        "warnings": list(analysis.warnings),
    }


def _compiled(ctx: ExecutionContext) -> codegen_pb2.GenerateCodeResponse:
    """The execution's compilation: the one made at submit, or (for an execution submitted
    before submit compiled) codegen.GenerateCode, once."""
    if ctx.compiled is None:
        req = codegen_pb2.GenerateCodeRequest(schema=struct(ctx.schema), params=ctx.params)
        ctx.compiled = ctx.clients.call(ctx.clients.codegen.GenerateCode, req, cancel=ctx.cancel)
    if hashlib.sha256(ctx.compiled.code.encode()).hexdigest() != ctx.compiled.sha256:
        raise ValueError("the compiled code's sha256 does not match")
    return ctx.compiled


class AnalyzeStrategyTool(ContextTool):
    name: str = "analyze_strategy"
    description: str = ("Interpret every rule of the strategy (codegen's analysis, made once at submit): formulas, "
                        "indicators, warnings.")
    args_schema: type[BaseModel] = NoArgs
    service_name: str = "codegen"

    def _run(self) -> str:
        def body():
            ctx = self.ctx
            try:
                ctx.analysis = _compiled(ctx).analysis
            except grpc.RpcError as exc:  # with a language model, a rule the grammar does not understand waits
                question = interpretations.left_to_analyzer(ctx, exc)  # for the Strategy Analyzer's proposal
                if question is None:
                    raise
                return question
            return _analysis_summary(ctx.analysis)

        return self.run_step(body)


def _memory(ctx: ExecutionContext, method, request, skipped: str):
    """A best-effort memory call: None (and a warning event) when memory is unavailable."""
    try:
        return ctx.clients.call(method, request, cancel=ctx.cancel)
    except grpc.RpcError as exc:
        ctx.warn("memory", f"memory unavailable, {skipped}: {errors.describe(errors.status_from_rpc_error(exc))}")
        return None


def _search(ctx: ExecutionContext, query: str, kind: str, skipped: str) -> list[dict] | None:
    """The user's memories of one kind closest to ``query``; None when memory is unavailable."""
    request = memory_pb2.SearchMemoriesRequest(query=query, user_id=ctx.user_id, limit=3, filters=struct({"kind": kind}))
    reply = _memory(ctx, ctx.clients.memory.SearchMemories, request, skipped)
    if reply is None:
        return None
    return [{"memory": m.content, "score": round(m.score, 3), "metadata": json_format.MessageToDict(m.metadata)}
            for m in reply.memories]


class InterpretArgs(BaseModel):
    node_id: str = Field(description="The node of the rule analyze_strategy says is not understood")
    rule: str = Field(description="That rule, exactly as written")
    conditions: list[dict] = Field(description="Structured conditions (the meta.conditions form, such as "
                                               '{"indicator": "rsi", "op": "<", "ref": 30}) that together mean the rule')
    rationale: str = Field(default="", description="Why the rule means this")


class InterpretRuleTool(ContextTool):
    """Held by the Strategy Analyzer with a language model only (crew/interpretations.py)."""

    name: str = "propose_rule_interpretation"
    description: str = (
        "For a rule analyze_strategy says is not understood: propose structured conditions that mean it. codegen "
        "compiles them like any structured condition; they run only if the request accepts interpreted rules, "
        "otherwise the execution fails with the rule named and your proposal attached for the user to resubmit.")
    args_schema: type[BaseModel] = InterpretArgs
    service_name: str = "codegen"

    def _run(self, node_id: str, rule: str, conditions: list[dict], rationale: str = "") -> str:
        arguments = {"node_id": node_id, "rule": rule, "conditions": conditions}
        return self.run_step(lambda: interpretations.propose(self.ctx, node_id, rule, conditions, rationale), arguments)


class SearchMemoryTool(ContextTool):
    name: str = "search_strategy_memory"
    description: str = ("Search the user's memory (mem0) for similar past strategies and how they did, and for the "
                        "custom indicators the user saved.")
    args_schema: type[BaseModel] = QueryArgs
    service_name: str = "memory"

    def _run(self, query: str) -> str:
        def body():
            found = _search(self.ctx, query, "strategy_pattern", "searching skipped")
            if found is None:
                return {"memories": [], "note": "memory unavailable"}
            self.ctx.memory_findings.extend(found)
            indicators = _search(self.ctx, query, indicator_memory.KIND, "saved indicators not searched") or []
            return {"saved_indicators": [i["memory"] for i in indicators], "memories": found}

        return self.run_step(body, {"query": query})


class PreferencesTool(ContextTool):
    name: str = "get_user_preferences"
    description: str = "Read the user's preferences (risk tolerance, maximum drawdown, preferred assets)."
    args_schema: type[BaseModel] = NoArgs
    service_name: str = "memory"

    def _run(self) -> str:
        def body():
            ctx = self.ctx
            try:
                ctx.preferences = ctx.load_preferences(cancel=ctx.cancel)
            except grpc.RpcError as exc:
                ctx.warn("memory", f"memory unavailable, preferences not read: {errors.describe(errors.status_from_rpc_error(exc))}")
                return {"preferences": {}, "note": "memory unavailable"}
            return {"preferences": ctx.preferences, "conflicts": ctx.preference_conflicts()}

        return self.run_step(body)


class TemplatesTool(ContextTool):
    name: str = "search_code_templates"
    description: str = "Look up code templates (shared and the user's own) for the strategy's rule families."
    args_schema: type[BaseModel] = QueryArgs
    service_name: str = "memory"

    def _run(self, query: str) -> str:
        def body():
            found = _search(self.ctx, query, "code_template", "templates not consulted")
            if found is None:
                return {"templates": [], "note": "memory unavailable"}
            self.ctx.templates = [{"rule_family": t["metadata"].get("rule_family"), "tested": t["metadata"].get("tested"),
                                   "score": t["score"]} for t in found]
            return {"templates": found}

        return self.run_step(body, {"query": query})


class GenerateCodeTool(ContextTool):
    name: str = "generate_vectorbt_code"
    description: str = ("Compile the strategy into a standalone VectorBT script (codegen.GenerateCode, compiled once "
                        "at submit and stored on the execution by sha256).")
    args_schema: type[BaseModel] = NoArgs
    service_name: str = "codegen"

    def _run(self) -> str:
        def body():
            ctx = self.ctx
            reply = _compiled(ctx)
            ctx.code, ctx.code_sha256 = reply.code, reply.sha256
            ctx.compiled_code, ctx.compiled_sha256 = reply.code, reply.sha256
            if ctx.code_source == "proposed":  # compiled again after a proposal was accepted: the compiled script runs
                ctx.code_source, ctx.code_source_reason = "compiled", "the strategy was compiled again after the proposal"
            ctx.save_code(ctx.execution_id, reply.code, reply.sha256)
            return {"code_sha256": reply.sha256, "lines": reply.code.count("\n") + 1, "summary": reply.analysis.summary}

        return self.run_step(body)


def _code_for(ctx: ExecutionContext, code_sha256: str) -> str:
    if not ctx.code or code_sha256.strip() != ctx.code_sha256:
        raise LookupError(f"no generated code with sha256 {code_sha256!r}; call generate_vectorbt_code first")
    return ctx.code


class ValidateCodeTool(ContextTool):
    name: str = "validate_python_code"
    description: str = ("Check the generated code against the code policy (an AST policy; the compiled script was "
                        "checked by codegen.GenerateCode, other code is checked by codegen.ValidateCode).")
    args_schema: type[BaseModel] = CodeRefArgs
    service_name: str = "codegen"

    def _run(self, code_sha256: str) -> str:
        def body():
            ctx = self.ctx
            try:
                code = _code_for(ctx, code_sha256)
            except LookupError as exc:
                return {"valid": False, "error": str(exc)}
            if code_sha256.strip() == ctx.compiled_sha256:  # GenerateCode checked its own output: no second check
                ctx.code_valid = True
                return {"valid": True, "code_sha256": ctx.code_sha256, "violations": [],
                        "checked": "by codegen.GenerateCode when the strategy was compiled at submit"}
            reply = ctx.clients.call(ctx.clients.codegen.ValidateCode, codegen_pb2.ValidateCodeRequest(code=code),
                                     cancel=ctx.cancel)
            ctx.code_valid = reply.valid
            if not reply.valid:
                problems = "; ".join(f"line {v.line}: {v.message}" for v in reply.violations)
                ctx.fail(errors.make_status(grpc.StatusCode.FAILED_PRECONDITION, f"generated code breaks the policy: {problems}",
                                            reason="CODE_POLICY_VIOLATION"))
            return {"valid": reply.valid, "code_sha256": ctx.code_sha256,
                    "violations": [json_format.MessageToDict(v) for v in reply.violations]}

        return self.run_step(body, {"code_sha256": code_sha256})


class ReadCodeTool(ContextTool):
    """Held with propose_vectorbt_code: the model needs the compiled script to base a proposal on."""

    name: str = "read_generated_code"
    description: str = ("Read the compiled VectorBT script (pass the code_sha256 generate_vectorbt_code returned), "
                        "to base a proposal on it.")
    args_schema: type[BaseModel] = CodeRefArgs
    max_observation: int = MAX_CODE_OBSERVATION

    def _run(self, code_sha256: str) -> str:
        def body():
            ctx = self.ctx
            known = {ctx.compiled_sha256: ctx.compiled_code, ctx.code_sha256: ctx.code}
            code = known.get(code_sha256.strip()) if code_sha256.strip() else None
            if not code:
                return {"error": f"no generated code with sha256 {code_sha256!r}; call generate_vectorbt_code first"}
            shown = {"code_sha256": code_sha256.strip(), "code": code}
            if len(json.dumps(shown)) > MAX_CODE_OBSERVATION:
                return {"error": f"the script is too long to show ({len(code)} characters): propose nothing"}
            return shown

        return self.run_step(body, {"code_sha256": code_sha256})


class ProposeCodeTool(ContextTool):
    name: str = "propose_vectorbt_code"
    description: str = (
        "Optional: propose your own version of the script instead of the compiled one (for example, built on a code "
        "template from memory). It is used only if it passes the code policy and, run in the sandbox on this "
        "execution's data, gives exactly the compiled script's trades and equity; otherwise the compiled script runs. "
        "Returns whether it was accepted, why, and the code_sha256 of the code that will run.")
    args_schema: type[BaseModel] = ProposeArgs

    def _run(self, code: str, rationale: str = "") -> str:
        step = {"code_sha256": proposals.sha256(code), "lines": code.count("\n") + 1, "rationale": rationale}
        return self.run_step(lambda: proposals.propose(self.ctx, code, rationale), step)


class ExecuteCodeTool(ContextTool):
    name: str = "execute_python_code"
    description: str = "Run the validated code in the sandbox on market data (sandbox.ExecuteCode) and return the metrics."
    args_schema: type[BaseModel] = CodeRefArgs
    service_name: str = "sandbox"

    def _run(self, code_sha256: str) -> str:
        def body():
            ctx = self.ctx
            try:
                code = _code_for(ctx, code_sha256)
            except LookupError as exc:
                return {"error": str(exc)}
            if not ctx.code_valid:
                return {"error": "the code has not passed validate_python_code"}
            reply = ctx.run_script(code)  # a proposal's run, when it is the proposal that executes, is not repeated
            for line in reply.logs:
                ctx.log("info", "sandbox", line)
            if reply.logs_truncated:
                ctx.log("warning", "sandbox", "output truncated at the sandbox's cap")
            ctx.run_ms = reply.duration_ms
            if reply.outcome != sandbox_pb2.RUN_OUTCOME_SUCCEEDED:
                status = reply.error if reply.HasField("error") else errors.make_status(
                    grpc.StatusCode.ABORTED, "the backtest run failed", reason="RUN_FAILED")
                status.message = f"sandbox: {sandbox_pb2.RunOutcome.Name(reply.outcome)}: {status.message}"
                ctx.fail(status)
                return {"outcome": sandbox_pb2.RunOutcome.Name(reply.outcome), "error": status.message}
            ctx.result = reply.result
            for message in warmup_shortfalls(ctx.analysis, ctx.params.start_date, reply.result.data):
                ctx.warn("sandbox", message)
            if (message := no_trade_warning(ctx.analysis, reply.result)) is not None:
                ctx.warn("sandbox", message)  # in the event stream, the insights and the CLI's output
            for message in never_closed_warnings(ctx.analysis, reply.result):
                ctx.warn("sandbox", message)
            if ctx.research is not None:  # the best combination of a sweep: its PSR and DSR against the ledger
                outcome.score(ctx)
            return {"outcome": "RUN_OUTCOME_SUCCEEDED", "metrics": json_format.MessageToDict(reply.result.metrics),
                    "duration_ms": round(reply.duration_ms, 1), "isolation": list(reply.isolation)}

        return self.run_step(body, {"code_sha256": code_sha256})


class StoreMemoryTool(ContextTool):
    name: str = "store_strategy_memory"
    description: str = ("Remember this strategy, its parameters and its outcome, success or failure, for the user "
                        "(memory.AddMemory; the same strategy and parameters update one memory).")
    args_schema: type[BaseModel] = StoreArgs
    service_name: str = "memory"
    after_failure: bool = True  # failures are worth remembering too

    def _run(self, note: str = "") -> str:
        def body():
            ctx = self.ctx
            if ctx.analysis is None:
                return {"stored": False, "reason": "nothing analysed to remember"}
            p = ctx.params
            params = json_format.MessageToDict(p, preserving_proto_field_name=True)
            metadata = {"kind": "strategy_pattern", "strategy": ctx.schema, "params": params,
                        "execution_id": ctx.execution_id, "symbols": ",".join(p.symbols), "timeframe": p.timeframe,
                        "indicators": ",".join(ctx.analysis.indicators)}
            head = f"Strategy: {ctx.analysis.summary}. Asset {', '.join(p.symbols)} {p.timeframe} {p.start_date}..{p.end_date}."
            if ctx.result is not None:
                m = ctx.result.metrics
                content = (f"{head} Result: total return {m.total_return:.2f}%, max drawdown {m.max_drawdown:.2f}%, "
                           f"{m.trades} closed trades"
                           + (f", win rate {m.win_rate:.1f}%" if m.HasField("win_rate") else "")
                           + (f", Sharpe {m.sharpe_ratio:.2f}" if m.HasField("sharpe_ratio") else ""))
                metadata.update(outcome="completed", code_sha256=ctx.code_sha256, total_return=round(m.total_return, 4),
                                max_drawdown=round(m.max_drawdown, 4), trades=m.trades)
            elif ctx.error is not None:
                content = f"{head} FAILED: {errors.describe(ctx.error)}"
                metadata.update(outcome="failed", failure_reason=errors.describe(ctx.error))
            else:
                return {"stored": False, "reason": "no outcome yet: run the code first"}
            if customs := indicator_memory.used_in(ctx.schema):  # found again by the indicator's name or meaning
                content += " " + "; ".join(indicator_memory.describe(*c) for c in customs) + "."
                metadata["custom_indicators"] = ",".join(name for name, _ in customs)
            if ctx.research is not None and ctx.result is not None:
                text, meta = outcome.memory(ctx)
                content += text
                metadata.update(meta)
            if note:
                content += f" Note: {note}"
            req = memory_pb2.AddMemoryRequest(messages=[memory_pb2.MemoryMessage(role="assistant", content=content)],
                                              user_id=ctx.user_id, metadata=struct(metadata), infer=False)
            if _memory(ctx, ctx.clients.memory.AddMemory, req, "pattern not stored") is None:
                return {"stored": False, "reason": "memory unavailable"}
            ctx.memory_stored = True
            return {"stored": True, "memory": content}

        return self.run_step(body, {"note": note})


def tools_for(ctx: ExecutionContext, with_proposals: bool = False) -> dict[str, list[BaseTool]]:
    """The tools each agent holds, bound to one execution. With ``with_proposals`` (a language model
    that calls tools natively, never the offline planner) the Code Generator may propose code, and the
    Strategy Analyzer structured conditions for a rule the grammar did not understand at submit."""
    generator = [TemplatesTool(ctx=ctx), GenerateCodeTool(ctx=ctx), ValidateCodeTool(ctx=ctx)]
    if with_proposals:
        generator += [ReadCodeTool(ctx=ctx), ProposeCodeTool(ctx=ctx)]
    return {
        "analyzer": [AnalyzeStrategyTool(ctx=ctx), SearchMemoryTool(ctx=ctx), PreferencesTool(ctx=ctx),
                     *([InterpretRuleTool(ctx=ctx)] if with_proposals and ctx.rule_interpretation else [])],
        "generator": generator,
        "executor": [ExecuteCodeTool(ctx=ctx), StoreMemoryTool(ctx=ctx)],
    }
