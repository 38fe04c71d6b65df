"""An exit, stop or target that closed none of a run's trades is warned about, by node, with the exits that did."""
from __future__ import annotations

from services.orchestrator.silent_rules import never_closed_warnings
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2

CLOSED, OPEN = backtest_pb2.TRADE_STATUS_CLOSED, backtest_pb2.TRADE_STATUS_OPEN
ANALYSIS = codegen_pb2.StrategyAnalysis(rules=[
    codegen_pb2.RuleInterpretation(node_id="entry", node_type="entry_condition", formula="close > SMA(close, 20)"),
    codegen_pb2.RuleInterpretation(node_id="hot", node_type="exit_condition", rule="Exit when RSI(14) is above 99",
                                   formula="RSI(close, 14) > 99, evaluated at bar close"),
    codegen_pb2.RuleInterpretation(node_id="take", node_type="take_profit", formula="exit when high >= entry_close * 6"),
    codegen_pb2.RuleInterpretation(node_id="stop", node_type="stop_loss", formula="exit when low <= entry_close * 0.95"),
    codegen_pb2.RuleInterpretation(node_id="fill_at", node_type="execution_rule", formula="fill[t] = close[t]"),
])


def result(*reasons: str, still_open: int = 0) -> backtest_pb2.BacktestResult:
    return backtest_pb2.BacktestResult(trades=[backtest_pb2.Trade(status=CLOSED, exit_reason=r) for r in reasons]
                                       + [backtest_pb2.Trade(status=OPEN, exit_reason="end_of_data")] * still_open)


def test_each_exit_node_that_closed_no_trade_is_named_with_the_exits_that_did():
    warnings = never_closed_warnings(ANALYSIS, result("sl", "sl", "sl", "hot"))
    assert warnings == ["take_profit 'take' (exit when high >= entry_close * 6) closed none of the 4 trades: the price "
                        "never reached the target while a position was open (exits: hot 1, sl 3); check it with "
                        "`stratexec explain`"]


def test_an_exit_condition_is_matched_by_its_node_id_and_stops_by_their_reason():
    warnings = never_closed_warnings(ANALYSIS, result("tp", "tp", "tp"))
    assert [w.split(" (")[0] for w in warnings] == ["exit_condition 'hot'", "stop_loss 'stop'"]


def test_too_few_closed_trades_say_nothing():
    assert never_closed_warnings(ANALYSIS, result("sl", "sl", still_open=5)) == []
    assert never_closed_warnings(None, result("sl", "sl", "sl")) == []
