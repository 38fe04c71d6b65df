"""The JSON Schema check and the analysis warnings."""
from __future__ import annotations

import pytest

from services.codegen import compiler
from services.codegen.emit import emit
from services.codegen.schema import STRATEGY_SCHEMA
from services.common.errors import ApiError
from tests.codegen.conftest import EXAMPLE, params

ENTRY = {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}}


def violations(doc, p=None) -> dict[str, str]:
    with pytest.raises(ApiError) as caught:
        compiler.analyze(doc, p)
    assert caught.value.code.name == "INVALID_ARGUMENT"
    return dict(caught.value.violations)


# (id, nodes after ENTRY, field, words in the description)
CASES = [
    ("unknown type", [{"id": "x", "type": "magic", "meta": {}}], "nodes[1].type", "unknown node type 'magic'"),
    ("missing meta", [{"id": "tp", "type": "take_profit"}], "nodes[1].meta", "'meta' is required"),
    ("missing target", [{"id": "tp", "type": "take_profit", "meta": {}}], "nodes[1].meta.target_pct", "required"),
    ("wrong type", [{"id": "tp", "type": "take_profit", "meta": {"target_pct": "7"}}], "nodes[1].meta.target_pct", "not of type 'number'"),
    ("negative", [{"id": "sl", "type": "stop_loss", "meta": {"stop_pct": -5}}], "nodes[1].meta.stop_pct", "less than or equal to the minimum"),
    ("unknown field", [{"id": "tp", "type": "take_profit", "meta": {"target_pct": 7, "trail": 1}}], "nodes[1].meta.trail", "not a field"),
    ("both stops", [{"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 5, "atr_multiple": 2}}], "nodes[1].meta", "exactly one of"),
    ("no rules", [{"id": "f", "type": "filter", "meta": {"combine": "all"}}], "nodes[1].meta", "meta.rules"),
    ("bad combine", [{"id": "f", "type": "filter", "meta": {"rules": ["RSI below 70"], "combine": "most"}}], "nodes[1].meta.combine", "is not one of"),
    ("rule not a string", [{"id": "f", "type": "exit_condition", "meta": {"rules": [5]}}], "nodes[1].meta.rules[0]", "not of type 'string'"),
    ("fractional bars", [{"id": "t", "type": "time_exit", "meta": {"max_bars": 2.5}}], "nodes[1].meta.max_bars", "not of type 'integer'"),
    ("exposure above 1", [{"id": "p", "type": "position_sizing", "meta": {"exposure": 2}}], "nodes[1].meta.exposure", "maximum"),
    ("duplicate id", [{"id": "entry", "type": "take_profit", "meta": {"target_pct": 5}}], "nodes[1].id", "already used"),
    ("two take profits", [{"id": "a", "type": "take_profit", "meta": {"target_pct": 5}}, {"id": "b", "type": "take_profit", "meta": {"target_pct": 6}}],
     "nodes[2].type", "only one take_profit"),
    ("bad operand", [{"id": "c", "type": "exit_condition", "meta": {"conditions": [{"indicator": "sma", "op": "crosses_above", "ref": {"indicator": "sma", "params": {"window": "x"}}}]}}],
     "nodes[1].meta.conditions[0].ref.params.window", "not of type 'integer'"),
    ("bad op", [{"id": "c", "type": "exit_condition", "meta": {"conditions": [{"indicator": "rsi", "op": "approx", "ref": 30}]}}],
     "nodes[1].meta.conditions[0].op", "is not one of"),
]


@pytest.mark.parametrize("case,nodes,field,words", CASES, ids=[c[0] for c in CASES])
def test_schema_violation_names_node_and_field(case, nodes, field, words):
    found = violations({"nodes": [ENTRY, *nodes]})
    assert field in found, found
    assert words in found[field]
    node_id = nodes[int(field.split("]")[0].split("[")[1]) - 1]["id"]
    assert f"node '{node_id}'" in found[field]


def test_strategy_needs_an_entry_and_nodes():
    assert "at least one entry_condition" in violations({"nodes": [{"id": "tp", "type": "take_profit", "meta": {"target_pct": 5}}]})["nodes"]
    assert "nodes" in violations({"nodes": []})
    assert "nodes" in violations({"graph": []})


def test_structured_condition_meaning_is_checked():
    doc = {"nodes": [{"id": "e", "type": "entry_condition", "meta": {"conditions": [
        {"indicator": "sma", "op": ">", "ref": 5},  # no window
        {"indicator": "rsi", "op": "crosses_above", "ref": {"indicator": "close"}},  # different scales
    ]}}]}
    found = violations(doc)
    assert "needs params.window" in found["nodes[0].meta.conditions[0]"]
    assert "different scales" in found["nodes[0].meta.conditions[1]"]


def test_every_bad_rule_is_reported_not_just_the_first():
    doc = {"nodes": [
        {"id": "a", "type": "entry_condition", "meta": {"rules": ["Buy when the moon is full", "Enter on 20-day MA crossover"]}},
        {"id": "b", "type": "exit_condition", "meta": {"rules": ["Sell when sentiment sours"]}},
    ]}
    found = violations(doc)
    assert set(found) == {"nodes[0].meta.rules[0]", "nodes[1].meta.rules[0]"}
    assert "node 'b'" in found["nodes[1].meta.rules[0]"] and "Sell when sentiment sours" in found["nodes[1].meta.rules[0]"]


def test_schema_is_a_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(STRATEGY_SCHEMA)  # raises on an invalid schema
    validator = jsonschema.Draft202012Validator(STRATEGY_SCHEMA)
    assert validator.is_valid(EXAMPLE)
    assert not validator.is_valid({"nodes": "not a list"})


def test_warnings():
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when price is above the 200-day SMA"]}},
        {"id": "tp", "type": "take_profit", "meta": {"target_pct": 3}},
        {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 8}},
    ]}
    a = compiler.analyze(doc, params(start_date="2024-01-01", end_date="2024-03-31"))
    text = " | ".join(a.warnings)
    assert "stop loss (8%) is wider than the take profit (3%)" in text
    assert a.warmup_bars == 200  # an SMA(200) is exact after its window, and one more bar for a comparison with t-1
    plain = compiler.analyze({"nodes": [doc["nodes"][0]]}, params())
    assert any("nothing closes a position" in w for w in plain.warnings)
    quiet = compiler.analyze(EXAMPLE, params())
    assert not any("wider" in w or "nothing closes" in w for w in quiet.warnings)


def test_position_sizing_node_overrides_params_with_a_warning():
    doc = {"nodes": [ENTRY, {"id": "size", "type": "position_sizing", "meta": {"exposure": 0.25}}]}
    a = compiler.analyze(doc, params(exposure=1.0))
    assert a.exposure == 0.25 and any("overrides" in w for w in a.warnings)
    assert [r.formula for r in a.rules if r.node_id == "size"] == ["size = 0.25 * available cash"]


def test_a_risk_sizing_node_sets_its_own_risk_per_trade_and_the_script_uses_it():
    doc = {"nodes": [ENTRY, {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 5}},
                     {"id": "size", "type": "position_sizing", "meta": {"method": "risk", "risk_per_trade": 0.02}}]}
    a = compiler.analyze(doc, params())
    assert (a.sizing, a.risk_per_trade) == ("risk", 0.02)
    assert ("node 'size' (position_sizing) overrides the request's position_sizing=percent, risk_per_trade=0.01 "
            "with position_sizing=risk, risk_per_trade=0.02") in a.warnings
    assert [r.formula for r in a.rules if r.node_id == "size"] == [
        "units = min(1, 0.02 / stop_fraction) * equity[t] / entry_price"]
    assert '"risk_per_trade": 0.02' in emit(a)
