"""An execution's insights: what the agents found and did, gathered from its
context when it ends, stored as JSON on the execution row, and served typed
(``AgentInsights``) beside the same JSON (``Execution.agent_insights``, for
existing clients)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf import json_format

from stratexec.orchestrator.v1 import insights_pb2

if TYPE_CHECKING:
    from services.orchestrator.crew.context import ExecutionContext

CODE_SOURCES = {"compiled": insights_pb2.CODE_SOURCE_COMPILED, "proposed": insights_pb2.CODE_SOURCE_PROPOSED}


def collect(ctx: "ExecutionContext", llm: str) -> dict:
    """The insights of an execution, as stored (JSON)."""
    insights = {"llm": llm, "stage_seconds": ctx.stage_seconds, "memory_findings": ctx.memory_findings,
                "memory_stored": ctx.memory_stored, "warnings": ctx.warnings, "preferences": ctx.preferences,
                "preference_conflicts": ctx.preference_conflicts(), "templates_consulted": ctx.templates}
    if ctx.analysis is not None:
        insights["summary"] = ctx.analysis.summary
        insights["interpretation"] = [json_format.MessageToDict(r, preserving_proto_field_name=True)
                                      for r in ctx.analysis.rules]
        insights["indicators"] = list(ctx.analysis.indicators)
        insights["warnings"] = list(ctx.analysis.warnings) + ctx.warnings
    if ctx.code_sha256:
        insights["code_sha256"] = ctx.code_sha256
        insights.update(ctx.code_insights())  # code_source "compiled" or "proposed", and why
    if ctx.run_ms:
        insights["sandbox_run_ms"] = round(ctx.run_ms, 1)
    return insights


def to_proto(stored: dict | None) -> insights_pb2.AgentInsights:
    """The typed insights of stored JSON; keys the message has no field for stay in the JSON only."""
    stored = dict(stored or {})
    source = CODE_SOURCES.get(stored.pop("code_source", ""), insights_pb2.CODE_SOURCE_UNSPECIFIED)
    templates = [{"rule_family": str(t.get("rule_family") or ""), "tested": bool(t.get("tested")),
                  "score": t.get("score") or 0.0} for t in stored.pop("templates_consulted", None) or []]
    message = json_format.ParseDict({**stored, "templates_consulted": templates}, insights_pb2.AgentInsights(),
                                    ignore_unknown_fields=True)
    message.code_source = source
    return message
