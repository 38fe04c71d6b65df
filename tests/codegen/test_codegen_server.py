"""The codegen service over gRPC: a real server process on a free port."""
from __future__ import annotations

import hashlib
import pathlib

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.codegen.conftest import EXAMPLE, params, struct
from services.common import errors
from stratexec.codegen.v1 import codegen_pb2


def _details(exc: grpc.RpcError) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo, list]:
    status = errors.status_from_rpc_error(exc)
    info, violations = error_details_pb2.ErrorInfo(), []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    return exc.code(), info, violations


def test_health_serving(codegen_server):
    with grpc.insecure_channel(codegen_server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "stratexec.codegen.v1.CodegenService"):
            assert stub.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING


def test_generate_code_returns_script_sha256_and_analysis(codegen_stub):
    reply = codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest(schema=struct(EXAMPLE), params=params(symbols=["BTC"])))
    assert reply.sha256 == hashlib.sha256(reply.code.encode()).hexdigest()
    assert "entries = close <= 0.95 * sma_20" in reply.code
    assert [r.node_id for r in reply.analysis.rules] == ["entry", "tp", "sl", "direction", "prices", "benchmark", "position_sizing", "fill_at", "stop_target_order", "reentry", "exit_reason"]
    assert {r.node_type for r in reply.analysis.rules[3:]} == {"execution_rule"}
    assert reply.analysis.rules[0].formula == "close <= 0.95 * SMA(close, 20), evaluated at bar close"
    assert list(reply.analysis.symbols) == ["BTC-USD"] and reply.analysis.timeframe == "1d"
    again = codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest(schema=struct(EXAMPLE), params=params(symbols=["BTC"])))
    assert again.code == reply.code and again.sha256 == reply.sha256


def test_analyze_strategy(codegen_stub):
    reply = codegen_stub.AnalyzeStrategy(codegen_pb2.AnalyzeStrategyRequest(schema=struct(EXAMPLE)))
    a = reply.analysis
    assert list(a.indicators) == ["SMA(close, 20)"]
    assert a.rules[1].node_type == "take_profit" and "7%" in a.rules[1].interpretation
    assert a.summary.startswith("BTC-USD, daily bars, 2024-01-01 to 2024-12-31: enter when close <= 0.95 * SMA(close, 20)")


def test_bad_rule_is_invalid_argument_with_bad_request(codegen_stub):
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover", "Buy when the moon is full"]}},
    ]}
    with pytest.raises(grpc.RpcError) as caught:
        codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest(schema=struct(doc)))
    code, info, violations = _details(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == "RULE_NOT_UNDERSTOOD" and info.metadata["node_id"] == "entry"
    assert info.metadata["rule"] == "Buy when the moon is full" and info.metadata["suggestion"]
    assert len(violations) == 1
    field, description = violations[0]
    assert field == "nodes[0].meta.rules[1]"
    assert "node 'entry'" in description and "Buy when the moon is full" in description
    assert "Closest supported phrasing" in description


def test_schema_error_names_node_and_field(codegen_stub):
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}},
        {"id": "tp", "type": "take_profit", "meta": {"target_pct": "seven"}},
        {"id": "x", "type": "magic", "meta": {}},
    ]}
    with pytest.raises(grpc.RpcError) as caught:
        codegen_stub.AnalyzeStrategy(codegen_pb2.AnalyzeStrategyRequest(schema=struct(doc)))
    code, info, violations = _details(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and info.reason == "SCHEMA_INVALID"
    fields = dict(violations)
    assert "node 'tp'" in fields["nodes[1].meta.target_pct"]
    assert "unknown node type 'magic'" in fields["nodes[2].type"] and "node 'x'" in fields["nodes[2].type"]


def test_missing_schema_and_bad_params(codegen_stub):
    with pytest.raises(grpc.RpcError) as caught:
        codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest(schema=struct(EXAMPLE), params=params(fees=1.5, timeframe="5m")))
    code, info, violations = _details(caught.value)
    assert info.reason == "PARAMS_INVALID"
    assert {f for f, _ in violations} == {"params.fees", "params.timeframe"}


def test_validate_code_accepts_generated_and_rejects_policy_breaches(codegen_stub):
    generated = codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest(schema=struct(EXAMPLE))).code
    ok = codegen_stub.ValidateCode(codegen_pb2.ValidateCodeRequest(code=generated))
    assert ok.valid and not ok.violations
    bad = codegen_stub.ValidateCode(codegen_pb2.ValidateCodeRequest(code="import os\nx = eval('1')\n"))
    assert not bad.valid
    rules = {(v.rule, v.line) for v in bad.violations}
    assert ("import-not-allowed", 1) in rules and ("forbidden-builtin", 2) in rules
    broken = codegen_stub.ValidateCode(codegen_pb2.ValidateCodeRequest(code="def f(:\n"))
    assert not broken.valid and broken.violations[0].rule == "syntax-error" and broken.violations[0].line == 1


def test_structured_conditions_over_grpc_match_in_process_generation(codegen_stub):
    from services.codegen import compiler, emit

    doc = {"nodes": [
        {"id": "cross", "type": "entry_condition", "meta": {"conditions": [
            {"indicator": "sma", "params": {"window": 20}, "op": "crosses_above", "ref": {"indicator": "sma", "params": {"window": 50}}}]}},
        {"id": "hold", "type": "time_exit", "meta": {"max_bars": 10}},
    ]}
    reply = codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest(schema=struct(doc)))
    assert reply.code == emit.emit(compiler.analyze(doc, None))
    assert reply.analysis.rules[0].formula.startswith("SMA(close, 20) crosses above SMA(close, 50)")
    assert reply.analysis.rules[1].rule == "max_bars: 10"


EXPLAINED = {"nodes": [
    {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when RSI is under 30"]}},
    {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Sell when it goes back over 70"]}},
]}


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "through-codegen"])
def test_explain_prints_every_rule_as_a_formula(codegen_server, tmp_path, capsys, remote):
    import json as json_mod

    from stratexec_cli.main import main

    path = tmp_path / "strategy.json"
    path.write_text(json_mod.dumps(EXPLAINED))
    argv = ["explain", str(path)] + (["--codegen", codegen_server.address] if remote else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "formula: RSI(close, 14) < 30, evaluated at bar close" in out
    assert "formula: RSI(close, 14) crosses above 70: RSI(close, 14)[t] > 70 and RSI(close, 14)[t-1] <= 70" in out
    assert 'warning: node \'exit\': rule "Sell when it goes back over 70" names no series before 70: read as RSI(close, 14)' in out


def test_explain_of_a_rule_not_understood_names_it_with_three_phrasings(tmp_path, capsys):
    import json as json_mod

    from stratexec_cli.main import main

    path = tmp_path / "strategy.json"
    path.write_text(json_mod.dumps({"nodes": [{"id": "e", "type": "entry_condition", "meta": {"rules": ["Buy when the Fed cuts"]}}]}))
    assert main(["explain", str(path)]) == 2
    err = capsys.readouterr().err
    assert "rule \"Buy when the Fed cuts\" is not understood" in err and err.count('"; "') == 2


def test_analyze_strategy_through_grpcurl_prints_the_formulas(codegen_server):
    import json as json_mod
    import subprocess
    import sys

    grpcurl = str(pathlib.Path(sys.executable).parent / "grpcurl")
    body = json_mod.dumps({"schema": EXPLAINED})
    out = subprocess.run([grpcurl, "-plaintext", "-d", body, codegen_server.address,
                          "stratexec.codegen.v1.CodegenService/AnalyzeStrategy"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    formulas = [r["formula"] for r in json_mod.loads(out)["analysis"]["rules"]]
    assert formulas[0] == "RSI(close, 14) < 30, evaluated at bar close"
    assert formulas[1].startswith("RSI(close, 14) crosses above 70")


def costly_schema(nodes: int = 24, rules: int = 20, chars: int = 500) -> dict:
    """The request that kept codegen busy for minutes: 24 nodes x 20 rules of 500 characters (245 KB)."""
    rule = ("Buy when the close rises above the 20-day moving average and " * 10)[:chars]
    return {"nodes": [{"id": f"e{i}", "type": "entry_condition", "meta": {"rules": [rule] * rules}}
                      for i in range(nodes)] + EXAMPLE["nodes"][1:]}


@pytest.mark.parametrize("rpc", ["AnalyzeStrategy", "GenerateCode"])
def test_rule_text_over_the_budget_is_refused_before_any_parsing(codegen_stub, rpc):
    request = getattr(codegen_pb2, f"{rpc}Request")(schema=struct(costly_schema()))
    with pytest.raises(grpc.RpcError) as caught:
        getattr(codegen_stub, rpc)(request, timeout=10)
    code, info, violations = _details(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and info.reason == "RULE_TEXT_TOO_LARGE"
    assert violations[0][0] == "nodes" and "characters of rule text" in violations[0][1]


def test_a_request_over_the_size_limit_is_refused(codegen_stub):
    doc = {"nodes": [{"id": f"n{i}", "type": "entry_condition", "meta": {"notes": "x" * 1000}} for i in range(300)]}
    with pytest.raises(grpc.RpcError) as caught:
        codegen_stub.AnalyzeStrategy(codegen_pb2.AnalyzeStrategyRequest(schema=struct(doc)), timeout=10)
    code, info, _ = _details(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and info.reason == "REQUEST_TOO_LARGE"


@pytest.mark.parametrize("fields,reason,words", [
    ({"direction": "short"}, "SWEEP_DIRECTION_UNIMPLEMENTED", "long positions only"),
    ({"position_sizing": "risk"}, "SWEEP_SIZING_UNIMPLEMENTED", "exposure of the cash available"),
])
def test_a_sweep_the_kernel_cannot_run_is_unimplemented_and_says_so(codegen_stub, fields, reason, words):
    schema = struct({"nodes": [{"id": "entry", "type": "entry_condition",
                                "meta": {"rules": ["Sell short when price crosses below the 20-day SMA"
                                                   if fields.get("direction") else "Buy when RSI(14) is below 30"]}},
                               {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 5}}]})
    with pytest.raises(grpc.RpcError) as caught:
        codegen_stub.GenerateSweepCode(codegen_pb2.GenerateSweepCodeRequest(schema=schema, params=params(**fields)))
    code, info, _ = _details(caught.value)
    assert code == grpc.StatusCode.UNIMPLEMENTED and info.reason == reason
    assert words in caught.value.details()
