"""What one execution's crew shares: ids, inputs, the artifacts the tools
produce, and the way back to the event log.

The outcome of an execution is decided from these artifacts (a stored
backtest or a recorded error), never from the language model's text.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import TYPE_CHECKING

import grpc
from google.rpc import status_pb2

from services.common import errors
from services.orchestrator.clients import Cancellation, ServiceClients
from services.orchestrator.events import EventLog
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.sandbox.v1 import sandbox_pb2

if TYPE_CHECKING:
    from services.orchestrator.research.state import Research


@dataclasses.dataclass
class ExecutionContext:
    execution_id: str
    user_id: str
    schema: dict
    params: backtest_pb2.BacktestParams
    clients: ServiceClients
    events: EventLog
    save_code: callable
    load_preferences: callable = None  # (cancel=...) -> the user's preferences (services/orchestrator/preferences.py)
    load_uploads: callable = None  # () -> the bars of the user's datasets among the symbols (dataset_service.uploads_for)
    lease: str | None = None  # this attempt's lease token (every write presents it)
    lease_lost: bool = False  # another replica took the execution over: stop, write nothing more
    outage_requeues: int = 0  # times it was re-queued after a dependency outage, before this attempt
    status: str = "ANALYZING"
    # The compilation made at submit (analysis, code, sha256); the tools read it instead of compiling again.
    compiled: codegen_pb2.GenerateCodeResponse | None = None
    analysis: codegen_pb2.StrategyAnalysis | None = None
    # A rule the grammar did not understand at submit (with a language model only, crew/interpretations.py):
    # "propose" or "accept" (accept_interpreted_rules); the rule waiting for the Strategy Analyzer's proposal
    # (codegen's error), the proposals so far, and the schema with them in place of their rules.
    rule_interpretation: str | None = None
    pending_rule: status_pb2.Status | None = None
    interpretations: list = dataclasses.field(default_factory=list)
    interpretation_attempts: int = 0
    interpreted_schema: dict | None = None
    code: str = ""
    code_sha256: str = ""
    code_valid: bool = False
    # The compiled script stays the reference when the Code Generator proposes code of its own
    # (with a language model only); ``code`` is the code that runs, and ``code_source`` says which.
    compiled_code: str = ""
    compiled_sha256: str = ""
    proposals_enabled: bool = False
    code_source: str = "compiled"  # or "proposed"
    code_source_reason: str = ""
    proposals: list = dataclasses.field(default_factory=list)  # {"code_sha256", "accepted", "reason", "rationale"}
    # sandbox replies that succeeded, by the code's sha256: no script runs twice in an attempt (with a proposal:
    # the proposal and the compiled reference run once each, and whichever is then executed is not run again)
    sandbox_replies: dict = dataclasses.field(default_factory=dict)
    result: backtest_pb2.BacktestResult | None = None
    # OptimizeStrategy only: the grid, the ledger and what the Strategy Optimizer found (research/state.py)
    research: "Research | None" = None
    run_ms: float = 0.0
    memory_findings: list = dataclasses.field(default_factory=list)
    memory_stored: bool = False
    preferences: dict = dataclasses.field(default_factory=dict)
    templates: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    error: status_pb2.Status | None = None
    cancel: Cancellation = dataclasses.field(default_factory=Cancellation)
    stage_seconds: dict = dataclasses.field(default_factory=dict)
    last_tool_ms: float = 0.0
    last_tool_result: str | None = None  # what the last tool returned, as the step event shows it
    _stage_started: float = dataclasses.field(default_factory=time.monotonic)

    def preference_conflicts(self) -> list[str]:
        """Where this strategy, its similar past strategies or its result go against the user's preferences."""
        conflicts = []
        limit = self.preferences.get("max_drawdown")
        if limit is not None:
            for found in self.memory_findings:
                dd = found["metadata"].get("max_drawdown")
                if dd is not None and -float(dd) > float(limit):
                    conflicts.append(f"a similar past strategy ({found['metadata'].get('symbols')}, execution "
                                     f"{found['metadata'].get('execution_id')}) had a max drawdown of {float(dd):.1f}%, "
                                     f"beyond your limit of -{float(limit):g}%")
            if self.result is not None and -self.result.metrics.max_drawdown > float(limit):
                conflicts.append(f"this backtest's max drawdown of {self.result.metrics.max_drawdown:.1f}% is beyond "
                                 f"your limit of -{float(limit):g}%")
        preferred = self.preferences.get("preferred_assets") or []
        others = [s for s in self.params.symbols if preferred and s not in preferred]
        if others:
            conflicts.append(f"{', '.join(others)} not among your preferred assets ({', '.join(preferred)})")
        return conflicts

    def code_insights(self) -> dict:
        """Which code ran, and why: the compiled script or the Code Generator's proposal."""
        reason = self.code_source_reason or ("the Code Generator proposed no code" if self.proposals_enabled
                                             else "the offline planner does not propose code")
        insights = {"code_source": self.code_source, "code_source_reason": reason}
        if self.interpretations:
            insights["rule_interpretations"] = self.interpretations
        if self.proposals_enabled:
            insights["compiled_code_sha256"] = self.compiled_sha256
            insights["code_proposals"] = self.proposals
        return insights

    def __post_init__(self) -> None:
        # Whichever write finds the lease gone (a tool's log line, or the step callback CrewAI calls after a
        # tool, whose exception CrewAI answers by running the task again), the attempt stops there: no tool
        # runs again.
        if getattr(self.events, "lease", None) is not None and self.events.on_lost is None:
            self.events = self.events.for_lease(self.events.lease, self.lose_lease)

    def lose_lease(self) -> None:
        """Another replica holds the execution now: stop the crew (its writes are refused anyway)."""
        self.lease_lost = True
        self.cancel.set()

    def run_script(self, code: str) -> sandbox_pb2.ExecuteCodeResponse:
        """The sandbox's answer for ``code`` on this execution's params (a succeeded one is kept and reused)."""
        digest = hashlib.sha256(code.encode()).hexdigest()
        reply = self.sandbox_replies.get(digest)
        if reply is None:
            request = sandbox_pb2.ExecuteCodeRequest(code=code, params=self.params, execution_id=self.execution_id,
                                                     uploads=self.load_uploads() if self.load_uploads else [])
            reply = self.clients.call(self.clients.sandbox.ExecuteCode, request,
                                      timeout=self.clients.config.sandbox_timeout_s, cancel=self.cancel)
            if reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED:
                self.sandbox_replies[digest] = reply
        return reply

    def adopt_code(self, reply: codegen_pb2.GenerateCodeResponse) -> None:
        """Make a compilation the code that runs (the compiled reference too): GenerateCode checked it against
        the policy, so it is valid. Used when the Strategy Optimizer picks the best combination."""
        self.compiled = reply
        self.analysis = reply.analysis
        self.code, self.code_sha256 = reply.code, reply.sha256
        self.compiled_code, self.compiled_sha256 = reply.code, reply.sha256
        self.code_valid = True
        self.save_code(self.execution_id, reply.code, reply.sha256)

    def log(self, level: str, source: str, message: str) -> None:
        self.events.log_line(self.execution_id, self.status, level, source, message)

    def warn(self, source: str, message: str) -> None:
        self.warnings.append(message)
        self.log("warning", source, message)

    def fail(self, status: status_pb2.Status) -> None:
        """Record the error that ends this execution (the first one wins)."""
        if self.error is None:
            self.error = status
            self.log("error", "orchestrator", errors.describe(status))

    def fail_rpc(self, service: str, exc: grpc.RpcError) -> status_pb2.Status:
        status = errors.status_from_rpc_error(exc)
        if not status.message.startswith(service):
            status.message = f"{service}: {status.message}"
        self.fail(status)
        return status

    def enter_stage(self, status: str) -> None:
        now = time.monotonic()
        self.stage_seconds[self.status.lower()] = round(now - self._stage_started, 3)
        self._stage_started = now
        self.status = status

    def close_stage(self) -> None:
        self.enter_stage(self.status)
