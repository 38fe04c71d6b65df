"""Rules the grammar does not understand, interpreted by the Strategy Analyzer
(with a language model only).

Without a model such a rule fails the request at submit. With one, the
execution is stored uncompiled (``rule_interpretation``) and the Strategy
Analyzer, told by analyze_strategy which rule is not understood, may propose
a structured condition for it (propose_rule_interpretation). codegen
compiles the proposal like any structured condition, so a bad one is
refused with codegen's reason and the model may try again.

It is never applied silently. Once every rule has a proposal and the
strategy compiles, either the execution fails with each rule named and its
proposal attached (the user resubmits it as ``meta.conditions``) or, when
the request set ``accept_interpreted_rules``, the proposal runs: marked as
the model's in the analysis and warned about in the event stream.
"""
from __future__ import annotations

import copy
import json

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common import errors
from services.orchestrator.convert import struct
from services.orchestrator.crew.context import ExecutionContext
from stratexec.codegen.v1 import codegen_pb2

MAX_PROPOSALS = 3  # codegen compilations a model may ask for in one execution
REASON = "RULE_NOT_UNDERSTOOD"


def _key(condition: dict) -> str:
    """How codegen names a structured condition in its analysis and its errors."""
    return json.dumps(condition, sort_keys=True)


def _violations(status: status_pb2.Status) -> list:
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return list(bad.field_violations)
    return []


def interpretable(status: status_pb2.Status) -> bool:
    """Is the strategy wrong only in rules the grammar does not understand (which a model may interpret)?"""
    info, violations = errors.error_info(status), _violations(status)
    return (status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and info is not None and info.reason == REASON
            and "suggestions" in info.metadata and bool(violations)
            and all(".meta.rules[" in v.field and "is not understood" in v.description for v in violations))


def _question(status: status_pb2.Status) -> dict:
    """What analyze_strategy tells the model about the rule waiting for an interpretation."""
    meta = errors.error_info(status).metadata
    shown = {"node": meta["node_id"], "rule": meta["rule"], "why": status.message,
             "closest_phrasings": [s for s in meta.get("suggestions", "").split(" | ") if s]}
    if meta.get("structured"):
        shown["near_miss_condition"] = json.loads(meta["structured"])
    return {"not_understood": shown,
            "next": "The grammar does not understand this rule. If its meaning is clear, propose one or more structured "
                    "conditions (the meta.conditions form) for it with propose_rule_interpretation; it is shown to the "
                    "user, never applied silently. Otherwise propose nothing: the execution fails with the rule named."}


def left_to_analyzer(ctx: ExecutionContext, exc: grpc.RpcError) -> dict | None:
    """analyze_strategy's answer when codegen did not understand a rule and the Strategy Analyzer may
    interpret it; None when the error is to fail the execution as it is."""
    if ctx.rule_interpretation is None or not ctx.proposals_enabled:
        return None
    status = errors.status_from_rpc_error(exc)
    if not interpretable(status):
        return None
    ctx.pending_rule = status
    return _question(status)


def _substituted(schema: dict, node_id: str, rule: str, conditions: list[dict]) -> tuple[dict, list[str]]:
    """``schema`` with ``rule`` of node ``node_id`` replaced by ``conditions``; and their fields."""
    schema = copy.deepcopy(schema)
    for i, node in enumerate(schema.get("nodes", [])):
        meta = node.get("meta", {})
        if node.get("id") == node_id and rule in meta.get("rules", []):
            meta["rules"] = [r for r in meta["rules"] if r != rule]
            if not meta["rules"]:
                del meta["rules"]
            before = len(meta.setdefault("conditions", []))
            meta["conditions"].extend(conditions)
            return schema, [f"nodes[{i}].meta.conditions[{before + k}]" for k in range(len(conditions))]
    raise LookupError(f"node {node_id!r} has no rule {rule!r}")


def propose(ctx: ExecutionContext, node_id: str, rule: str, conditions: list[dict], rationale: str) -> dict:
    """The body of propose_rule_interpretation: compile the strategy with the proposal in place of the rule."""
    if ctx.pending_rule is None:
        return {"error": "no rule is waiting for an interpretation"}
    meta = errors.error_info(ctx.pending_rule).metadata
    if (node_id, rule) != (meta["node_id"], meta["rule"]):
        return {"error": f"the rule waiting for an interpretation is node {meta['node_id']!r}: {meta['rule']!r}"}
    if not conditions or not all(isinstance(c, dict) for c in conditions):
        return {"error": "conditions: give one or more structured conditions (objects), such as "
                         '{"indicator": "rsi", "op": "<", "ref": 30}'}
    if ctx.interpretation_attempts >= MAX_PROPOSALS:
        return {"error": f"at most {MAX_PROPOSALS} proposals in one execution: propose nothing more"}
    ctx.interpretation_attempts += 1
    schema, fields = _substituted(ctx.interpreted_schema or ctx.schema, node_id, rule, conditions)
    field = next((v.field for v in _violations(ctx.pending_rule) if f'"{rule}"' in v.description), "schema")
    proposal = {"node_id": node_id, "rule": rule, "field": field, "conditions": conditions, "rationale": rationale}
    try:
        reply = ctx.clients.call(ctx.clients.codegen.GenerateCode,
                                 codegen_pb2.GenerateCodeRequest(schema=struct(schema), params=ctx.params), cancel=ctx.cancel)
    except grpc.RpcError as exc:
        status = errors.status_from_rpc_error(exc)
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        refused = [v.description for v in _violations(status) if v.field in fields]
        if refused:  # the proposal itself: the model may try again
            return {"accepted": False, "error": "; ".join(refused)}
        if not interpretable(status):  # the strategy is wrong in another way: it fails as it is
            raise
        ctx.interpretations.append(proposal)  # and the next rule the grammar does not understand
        ctx.interpreted_schema, ctx.pending_rule = schema, status
        return {"accepted": True, **_question(status)}
    ctx.interpretations.append(proposal)
    ctx.interpreted_schema, ctx.pending_rule = schema, None
    formulas = _mark(reply.analysis, ctx.interpretations)
    if ctx.rule_interpretation != "accept":
        ctx.fail(_refusal(ctx.interpretations, formulas))
        return {"accepted": False, "error": errors.describe(ctx.error)}
    ctx.compiled, ctx.analysis = reply, reply.analysis
    for p, formula in zip(ctx.interpretations, formulas):
        ctx.warn("orchestrator", f"node '{p['node_id']}': rule \"{p['rule']}\" is not understood by the grammar; the "
                                 f"Strategy Analyzer's (a language model's) reading runs, as accept_interpreted_rules "
                                 f"asks: {formula}")
    return {"accepted": True, "formulas": formulas, "summary": reply.analysis.summary}


def _mark(analysis: codegen_pb2.StrategyAnalysis, proposals: list[dict]) -> list[str]:
    """Show each proposal's conditions as the rule they stand for, marked as the model's; their formulas."""
    formulas = []
    for p in proposals:
        keys = {_key(c) for c in p["conditions"]}
        found = [r for r in analysis.rules if r.node_id == p["node_id"] and r.rule in keys]
        for r in found:
            r.rule, r.interpreted_by_model = p["rule"], True
            r.interpretation = f"a language model's reading (the grammar does not understand the rule): {r.interpretation}"
        formulas.append(" and ".join(r.formula for r in found))
    return formulas


def _refusal(proposals: list[dict], formulas: list[str]) -> status_pb2.Status:
    """The execution's error when the proposals may not run: each rule named, with its proposal."""
    first = proposals[0]
    shown = [f"node '{p['node_id']}': rule \"{p['rule']}\" is not understood by the grammar; the Strategy Analyzer (a "
             f"language model) proposes the structured conditions {json.dumps(p['conditions'], sort_keys=True)} "
             f"({formula}): resubmit them as meta.conditions, or set accept_interpreted_rules to run them"
             for p, formula in zip(proposals, formulas)]
    message = shown[0] if len(shown) == 1 else f"{len(shown)} rules are not understood; the first: {shown[0]}"
    return errors.make_status(
        grpc.StatusCode.INVALID_ARGUMENT, message, reason=REASON,
        metadata={"node_id": first["node_id"], "rule": first["rule"], "proposed_by": "model",
                  "proposed_conditions": json.dumps(first["conditions"], sort_keys=True), "proposed_formula": formulas[0]},
        violations=[(p["field"], text) for p, text in zip(proposals, shown)])


def settle(ctx: ExecutionContext) -> None:
    """After the Strategy Analyzer: a rule still not understood (no proposal, or none that compiles) fails
    the execution with codegen's own error."""
    if ctx.error is None and ctx.pending_rule is not None:
        status = status_pb2.Status()
        status.CopyFrom(ctx.pending_rule)
        status.message += " (the Strategy Analyzer proposed no interpretation that compiles)"
        ctx.fail(status)
