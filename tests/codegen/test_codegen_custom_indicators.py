"""Custom indicator nodes: parsed by the expression grammar (never evaluated as Python), checked, compiled
into readable script lines whose values equal a pandas computation of the expression."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.codegen import compiler
from services.common import errors
from stratexec.codegen.v1 import codegen_pb2
from tests.codegen.conftest import load_script, params, struct
from tests.codegen.heldout_oracle import Bars, atr, ema, rsi, up

OSC = {"id": "osc", "type": "indicator", "meta": {"name": "my_osc", "expression": "(close - sma(close, 10)) / atr(14)"}}


def doc(*nodes) -> dict:
    return {"nodes": [*nodes,
                      {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when my_osc crosses above 1.5"]}},
                      {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Exit when it is below 0"]}}]}


def test_custom_indicator_through_codegen_grpc_equals_pandas(codegen_stub, btc_bars, tmp_path):
    reply = codegen_stub.GenerateCode(codegen_pb2.GenerateCodeRequest(schema=struct(doc(OSC)), params=params()))
    assert "ind_my_osc = ((close - (close).rolling(10).mean()) / atr_14)" in reply.code  # one readable line
    got = load_script(reply.code, tmp_path).signals(btc_bars)
    d = Bars(btc_bars)
    want = (d.c - d.c.rolling(10).mean()) / atr(d, 14)
    pd.testing.assert_series_equal(got["ind_my_osc"], want, check_names=False, rtol=1e-12)
    assert got["entries"].equals(up(want, 1.5).fillna(False)) and got["entries"].sum() > 0
    assert got["exits"].equals((want < 0).fillna(False))  # "it" bound to my_osc, said in the analysis
    assert any("read as my_osc" in w for w in reply.analysis.warnings)
    assert reply.analysis.rules[0].rule == "my_osc = (close - sma(close, 10)) / atr(14)"


def test_functions_of_any_series_and_indicators_by_name(btc_bars, tmp_path):
    nodes = [
        {"id": "a", "type": "indicator", "meta": {"name": "smooth_rsi", "expression": "ema(rsi(close, 7), 5)"}},
        {"id": "b", "type": "indicator", "meta": {"name": "band", "expression":
                                                  "max(abs(close - lag(close, 3)), rolling_std(close, 20)) / rolling_max(high, 5)"}},
        {"id": "c", "type": "indicator", "meta": {"name": "spread", "expression": "smooth_rsi - rolling_mean(smooth_rsi, 10)"}},
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when spread crosses above 0 and band is above 0.01"]}},
    ]
    analysis = compiler.analyze({"nodes": nodes}, None)
    from services.codegen import emit

    got = load_script(emit.emit(analysis), tmp_path).signals(btc_bars)
    c, h = btc_bars["close"], btc_bars["high"]
    smooth = ema(rsi(c, 7), 5)
    band = np.maximum((c - c.shift(3)).abs(), c.rolling(20).std()) / h.rolling(5).max()
    pd.testing.assert_series_equal(got["ind_smooth_rsi"], smooth, check_names=False, rtol=1e-10)
    pd.testing.assert_series_equal(got["ind_band"], band, check_names=False, rtol=1e-12)
    pd.testing.assert_series_equal(got["ind_spread"], smooth - smooth.rolling(10).mean(), check_names=False, rtol=1e-10)


@pytest.mark.parametrize("name,expression,says", [
    ("x", "foo(close)", "position 1: unknown function 'foo'"),
    ("x", "sma(close)", "sma() takes 2 arguments, not 1"),
    ("x", "sma(close, 2.5)", "position 12: the window of sma() must be a whole number"),
    ("x", "lag(close, 0)", "a lag below 1 would read the future"),
    ("x", "lag(close, -1)", "the window of lag() must be a whole number"),
    ("x", "close + volume", "different scales (price and volume)"),
    ("x", "(" * 13 + "close" + ")" * 13, "nests parentheses 13 deep; at most 12"),
    ("x", "close +* 2", "position 8: unexpected"),
    ("x", "x * 2", "refers to itself"),
    ("x", "later * 2", "unknown name 'later'"),
    ("sma", "close", "shadows a built-in"),
    ("x", "__import__('os')", "unexpected"),
])
def test_bad_expressions_name_the_node_the_position_and_what_is_allowed(name, expression, says):
    node = {"id": "ind", "type": "indicator", "meta": {"name": name, "expression": expression}}
    with pytest.raises(errors.ApiError) as caught:
        compiler.analyze({"nodes": [node, {"id": "e", "type": "entry_condition", "meta": {"rules": ["Buy when RSI is below 30"]}}]}, None)
    assert caught.value.code.name == "INVALID_ARGUMENT"
    field, text = caught.value.violations[0]
    assert field == "nodes[0].meta.expression" or "shadows" in says
    assert "node 'ind'" in text and says in text
    if "position" in says:
        assert "allowed: the fields open, high, low, close, volume" in text
