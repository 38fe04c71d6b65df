"""`stratexec explain strategy.json`: every rule's interpretation as a formula, before anything runs.

By default the strategy is analysed in this process by the same compiler
CodegenService.AnalyzeStrategy runs (no server needed); with --codegen ADDR
the running CodegenService answers instead.
"""
from __future__ import annotations

import json

import grpc
from google.protobuf import json_format, struct_pb2

from services.common import errors
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc


class ExplainError(Exception):
    """The strategy is not understood: the message names the node, the rule and the closest phrasings."""


def analyze(schema: dict, params: backtest_pb2.BacktestParams, codegen_addr: str | None = None) -> codegen_pb2.StrategyAnalysis:
    if codegen_addr:
        struct = struct_pb2.Struct()
        struct.update(schema)
        with grpc.insecure_channel(codegen_addr) as channel:
            stub = codegen_pb2_grpc.CodegenServiceStub(channel)
            try:
                reply = stub.AnalyzeStrategy(codegen_pb2.AnalyzeStrategyRequest(schema=struct, params=params), timeout=30)
            except grpc.RpcError as exc:
                raise ExplainError(f"{exc.code().name}: {exc.details()}") from None
        return reply.analysis
    from services.codegen import compiler

    try:
        return compiler.analyze(schema, params).to_proto()
    except errors.ApiError as exc:
        lines = [f"{exc.code.name}: {exc.message}"] + [f"  {field}: {text}" for field, text in exc.violations[1:]]
        raise ExplainError("\n".join(lines)) from None


def render(analysis: codegen_pb2.StrategyAnalysis) -> str:
    out = [analysis.summary, ""]
    for rule in analysis.rules:
        out.append(f"[{rule.node_id}] ({rule.node_type}) {rule.rule}")
        out.append(f"    formula: {rule.formula}")
        out.append(f"    meaning: {rule.interpretation}")
    if analysis.parameters:
        out += ["", "Parameters (stratexec optimize --param NAME=START:STOP:STEP or NAME=V1,V2,...):"]
        out.extend(f"  {p.name:<24} {p.value:<10g} {p.range}" for p in analysis.parameters)
    if analysis.warnings:
        out.append("")
        out.extend(f"warning: {w}" for w in analysis.warnings)
    return "\n".join(out)


def as_json(analysis: codegen_pb2.StrategyAnalysis) -> str:
    return json.dumps(json_format.MessageToDict(analysis), indent=2)
