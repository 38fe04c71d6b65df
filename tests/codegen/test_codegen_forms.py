"""Every rule form: the generated script's signals equal an independent
computation on the bundled data, and never look ahead."""
from __future__ import annotations

import operator

import numpy as np
import pandas as pd
import pytest

from tests.codegen import indicators_reference as ref
from tests.codegen.conftest import generate, load_script

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
TIE = 1e-9  # relative: a bar this close to its threshold may go either way in floating point


def compare(op, lhs, rhs):
    valid = lhs.notna() & rhs.notna()
    signal = OPS[op](lhs, rhs) & valid
    tie = ((lhs - rhs).abs() <= TIE * (lhs.abs() + rhs.abs() + 1)) & valid
    return signal, tie


def crosses(direction, lhs, rhs):
    now, before = (">", "<=") if direction == "above" else ("<", ">=")
    a, tie_a = compare(now, lhs, rhs)
    b, tie_b = compare(before, lhs.shift(1), rhs.shift(1))
    return a & b, tie_a | tie_b


def const(bars, value):
    return pd.Series(float(value), index=bars.index)


def both(*pairs, how="all"):
    signal = pairs[0][0]
    tie = pairs[0][1]
    for s, t in pairs[1:]:
        signal = (signal & s) if how == "all" else (signal | s)
        tie = tie | t
    return signal, tie


def persist(pair, bars):
    signal, tie = pair
    held = pd.Series([bool(signal.iloc[max(0, i - bars + 1) : i + 1].all()) and i >= bars - 1 for i in range(len(signal))], index=signal.index)
    near = pd.Series([bool(tie.iloc[max(0, i - bars + 1) : i + 1].any()) for i in range(len(tie))], index=tie.index)
    return held, near


# (id, node type, rule or structured condition, column, expected(bars) -> (signal, tie mask))
FORMS = [
    ("sma-pct-drop", "entry_condition", "Enter on a 5% price drop from the 20-day moving average", "entries",
     lambda b: compare("<=", b.close, 0.95 * ref.sma(b.close, 20))),
    ("ema-close-above", "entry_condition", "Buy when price closes above the 50-day EMA", "entries",
     lambda b: compare(">", b.close, ref.ema(b.close, 50))),
    ("wma-pct-above", "exit_condition", "Sell when price is 8% above the 10-day WMA", "exits",
     lambda b: compare(">=", b.close, 1.08 * ref.wma(b.close, 10))),
    ("wma-cross-below", "exit_condition", "Exit when price crosses below the 20-day WMA", "exits",
     lambda b: crosses("below", b.close, ref.wma(b.close, 20))),
    ("sma-crossover", "entry_condition", "Enter on 20-day MA crossover", "entries",
     lambda b: crosses("above", b.close, ref.sma(b.close, 20))),
    ("sma-sma-cross", "entry_condition", "Buy when the 20-day SMA crosses above the 50-day SMA", "entries",
     lambda b: crosses("above", ref.sma(b.close, 20), ref.sma(b.close, 50))),
    ("ema-ema-cross", "exit_condition", "Exit when the 10-day EMA crosses below the 30-day EMA", "exits",
     lambda b: crosses("below", ref.ema(b.close, 10), ref.ema(b.close, 30))),
    ("rsi-level", "entry_condition", "Buy when RSI(14) is below 30", "entries",
     lambda b: compare("<", ref.rsi(b.close, 14), const(b, 30))),
    ("rsi-cross", "exit_condition", "Exit when RSI crosses below 70", "exits",
     lambda b: crosses("below", ref.rsi(b.close, 14), const(b, 70))),
    ("macd-signal-cross", "entry_condition", "Buy when MACD crosses above the signal line", "entries",
     lambda b: crosses("above", *ref.macd(b.close)[:2])),
    ("macd-hist-sign", "exit_condition", "Exit when the MACD histogram is negative", "exits",
     lambda b: compare("<", ref.macd(b.close)[2], const(b, 0))),
    ("macd-hist-turns", "entry_condition", "Enter when the MACD histogram turns positive", "entries",
     lambda b: crosses("above", ref.macd(b.close)[2], const(b, 0))),
    ("bb-close-below", "entry_condition", "Buy when price closes below the lower Bollinger Band", "entries",
     lambda b: compare("<", b.close, ref.bollinger(b.close)[2])),
    ("bb-touch-upper", "exit_condition", "Sell when price touches the upper Bollinger Band", "exits",
     lambda b: compare(">=", b.high, ref.bollinger(b.close)[1])),
    ("bb-outside-2.5", "exit_condition", "Sell when the close is above the upper Bollinger Band (20, 2.5)", "exits",
     lambda b: compare(">", b.close, ref.bollinger(b.close, 20, 2.5)[1])),
    ("high-breakout", "entry_condition", "Buy when the close breaks above the 20-day high", "entries",
     lambda b: compare(">", b.close, ref.highest(b.high, 20))),
    ("low-breakdown", "exit_condition", "Exit when the close breaks below the 10-day low", "exits",
     lambda b: compare("<", b.close, ref.lowest(b.low, 10))),
    ("pct-move-n-days", "entry_condition", "Buy when price rises 10% in 5 days", "entries",
     lambda b: compare(">=", b.close, 1.1 * ref.lag(b.close, 5))),
    ("roc-level", "entry_condition", "Enter when the 10-day rate of change is above 5%", "entries",
     lambda b: compare(">", 100 * (b.close / ref.lag(b.close, 10) - 1), const(b, 5))),
    ("volume-vs-average", "entry_condition", "Buy when volume is above its 20-day average", "entries",
     lambda b: compare(">", b.volume, ref.sma(b.volume, 20))),
    ("volume-multiple", "entry_condition", "Enter when volume is 2x the 20-day average volume", "entries",
     lambda b: compare(">=", b.volume, 2 * ref.sma(b.volume, 20))),
    ("touch-ma", "entry_condition", "Buy when price touches the 50-day moving average", "entries",
     lambda b: both(compare("<=", b.low, ref.sma(b.close, 50)), compare(">=", b.high, ref.sma(b.close, 50)))),
    ("and-combination", "entry_condition", "Buy when RSI is under 45 and price is above the 200-day SMA", "entries",
     lambda b: both(compare("<", ref.rsi(b.close), const(b, 45)), compare(">", b.close, ref.sma(b.close, 200)))),
    ("between", "entry_condition", "Buy when RSI is between 40 and 60", "entries",
     lambda b: both(compare(">=", ref.rsi(b.close), const(b, 40)), compare("<=", ref.rsi(b.close), const(b, 60)))),
    ("persistence", "entry_condition", "Buy when price closes above the 20-day SMA for 3 consecutive days", "entries",
     lambda b: persist(compare(">", b.close, ref.sma(b.close, 20)), 3)),
    ("structured-cross", "entry_condition",
     {"indicator": "ema", "params": {"window": 12}, "op": "crosses_above", "ref": {"indicator": "sma", "params": {"window": 26}}},
     "entries", lambda b: crosses("above", ref.ema(b.close, 12), ref.sma(b.close, 26))),
    ("structured-multiplier", "exit_condition",
     {"indicator": "close", "op": "<", "ref": {"indicator": "ema", "params": {"window": 20}, "multiplier": 0.97}},
     "exits", lambda b: compare("<", b.close, 0.97 * ref.ema(b.close, 20))),
    ("structured-atr-vs-close", "entry_condition",
     {"indicator": "roc", "params": {"window": 3}, "op": "crosses_below", "ref": -4},
     "entries", lambda b: crosses("below", 100 * (b.close / ref.lag(b.close, 3) - 1), const(b, -4))),
]


def strategy(node_type: str, rule) -> dict:
    meta = {"rules": [rule]} if isinstance(rule, str) else {"conditions": [rule]}
    nodes = [{"id": "n", "type": node_type, "meta": meta}]
    if node_type != "entry_condition":
        nodes.insert(0, {"id": "always", "type": "entry_condition", "meta": {"rules": ["Buy when the price is above 0"]}})
    return {"nodes": nodes}


@pytest.mark.parametrize("form_id,node_type,rule,column,expected", FORMS, ids=[f[0] for f in FORMS])
def test_signals_equal_reference(form_id, node_type, rule, column, expected, btc_bars, tmp_path):
    module = load_script(generate(strategy(node_type, rule))[0], tmp_path)
    got = module.signals(btc_bars)[column]
    want, tie = expected(btc_bars)
    assert want.sum() > 0, "the form never fires on the bundled data: the comparison would prove nothing"
    assert got.dtype == bool
    mismatch = (got != want) & ~tie
    assert not mismatch.any(), f"differs on {list(got.index[mismatch][:5])}"
    assert (got != want).sum() <= tie.sum()


@pytest.mark.parametrize("form_id,node_type,rule,column,expected", FORMS, ids=[f[0] for f in FORMS])
def test_no_look_ahead(form_id, node_type, rule, column, expected, btc_bars, tmp_path):
    module = load_script(generate(strategy(node_type, rule))[0], tmp_path)
    full = module.signals(btc_bars)
    for cut in (30, 250, 1000, len(btc_bars) - 1):
        pd.testing.assert_frame_equal(module.signals(btc_bars.iloc[:cut]), full.iloc[:cut])


def test_atr_stop_distance_and_filter_no_look_ahead(btc_bars, tmp_path):
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when RSI is below 40", "Enter on 20-day MA crossover"], "combine": "any"}},
        {"id": "trend", "type": "filter", "meta": {"rules": ["Only when price is above the 100-day moving average"]}},
        {"id": "sl", "type": "stop_loss", "meta": {"atr_multiple": 2.5, "atr_window": 10}},
    ]}
    module = load_script(generate(doc)[0], tmp_path)
    full = module.signals(btc_bars)
    b = btc_bars
    distance = 2.5 * ref.atr(b, 10)  # in price units, below the entry price
    np.testing.assert_allclose(full["sl_distance"].to_numpy(), distance.to_numpy(), rtol=1e-9, equal_nan=True)
    entry_rsi, tie1 = compare("<", ref.rsi(b.close), const(b, 40))
    entry_cross, tie2 = crosses("above", b.close, ref.sma(b.close, 20))
    trend, tie3 = compare(">", b.close, ref.sma(b.close, 100))
    want = (entry_rsi | entry_cross) & trend & distance.notna()
    tie = tie1 | tie2 | tie3
    assert want.sum() > 0 and not ((full["entries"] != want) & ~tie).any()
    for cut in (40, 300, len(b) - 1):
        pd.testing.assert_frame_equal(module.signals(b.iloc[:cut]), full.iloc[:cut])


@pytest.mark.parametrize("form_id,node_type,rule,column,expected", FORMS, ids=[f[0] for f in FORMS])
def test_generated_script_passes_the_code_policy(form_id, node_type, rule, column, expected):
    from services.common.code_policy import check_code

    assert check_code(generate(strategy(node_type, rule))[0]) == []
