"""A pronoun or an omitted subject binds to the series the strategy's other rules name, or the rule is rejected."""
from __future__ import annotations

import pytest

from services.codegen import compiler
from services.common import errors


def strategy(entry: str, exit_: str) -> dict:
    return {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": [entry]}},
        {"id": "exit", "type": "exit_condition", "meta": {"rules": [exit_]}},
    ]}


@pytest.mark.parametrize("exit_rule,formula", [
    ("Sell when it is above 70", "RSI(close, 14) > 70"),
    ("Sell when it goes back over 70", "RSI(close, 14) crosses above 70"),
])
def test_pronoun_binds_to_the_series_the_other_rule_names(exit_rule, formula):
    analysis = compiler.analyze(strategy("Buy when RSI is under 30", exit_rule), None)
    exit_info = next(r for r in analysis.rules if r.node_id == "exit")
    assert exit_info.formula.startswith(formula)
    assert "RSI" in exit_info.interpretation
    assert any(exit_rule in w and "read as RSI(close, 14)" in w for w in analysis.warnings)


def test_pronoun_without_a_named_series_is_rejected_with_the_rule_named():
    with pytest.raises(errors.ApiError) as caught:
        compiler.analyze(strategy("Buy when price crosses above the 50-day SMA", "Sell when it is above 70"), None)
    assert "Sell when it is above 70" in caught.value.message
    assert "does not say what is compared with 70" in caught.value.message


def test_pronoun_with_several_candidate_series_is_rejected():
    doc = strategy("Buy when RSI is under 30", "Sell when it is above 70")
    doc["nodes"].append({"id": "f", "type": "filter", "meta": {"rules": ["Only when the 10-day rate of change is above 0%"]}})
    with pytest.raises(errors.ApiError) as caught:
        compiler.analyze(doc, None)
    assert "several series" in caught.value.message and "Sell when it is above 70" in caught.value.message
