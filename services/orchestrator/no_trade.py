"""A backtest with no trade is almost always a rule that never fires: say so, naming the rules."""
from __future__ import annotations

from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2


def no_trade_warning(analysis: codegen_pb2.StrategyAnalysis | None, result: backtest_pb2.BacktestResult) -> str | None:
    """The warning for a run without a single trade, or None."""
    if len(result.trades):
        return None
    entries = [f'"{r.rule}" ({r.formula})' for r in (analysis.rules if analysis else []) if r.node_type == "entry_condition"]
    filters = [f'"{r.rule}"' for r in (analysis.rules if analysis else []) if r.node_type == "filter"]
    said = "; ".join(entries) or "the entry rules"
    with_filters = f", together with the filters {', '.join(filters)}," if filters else ""
    return (f"no trade: the entry condition {said}{with_filters} never held on a bar of the backtest window; "
            f"check the rules with `stratexec explain` (a level the series never reaches?)")
