"""Rules that never acted in a run: a backtest with no trade (an entry that never held), and an exit, a stop or a
target that closed none of the trades. Almost always a level the series never reaches: say so, naming the rule."""
from __future__ import annotations

from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2

# node type -> the exit reason its closes carry (an exit_condition's is its node id)
EXIT_REASONS = {"take_profit": "tp", "stop_loss": "sl", "trailing_stop": "trail", "time_exit": "time_exit"}
MIN_TRADES = 3  # with fewer closed trades an exit that never acted says little
WHY = {
    "exit_condition": "its condition never held while a position was open, or another exit always came first",
    "take_profit": "the price never reached the target while a position was open",
    "stop_loss": "the price never fell to the stop while a position was open",
    "trailing_stop": "the price never fell back to the trailing stop while a position was open",
    "time_exit": "every position closed before the time limit",
}


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


def never_closed_warnings(analysis: codegen_pb2.StrategyAnalysis | None, result: backtest_pb2.BacktestResult) -> list[str]:
    """One warning per exit node (exit_condition, take_profit, stop_loss, trailing_stop, time_exit) that closed
    none of the run's closed trades, when there are at least MIN_TRADES of them."""
    closed = [t for t in result.trades if t.status == backtest_pb2.TRADE_STATUS_CLOSED]
    if analysis is None or len(closed) < MIN_TRADES:
        return []
    fired = {t.exit_reason for t in closed}
    nodes: dict[str, codegen_pb2.RuleInterpretation] = {}
    for rule in analysis.rules:
        if rule.node_type in WHY:
            nodes.setdefault(rule.node_id, rule)  # the node's first rule names it
    counts = ", ".join(f"{reason} {sum(t.exit_reason == reason for t in closed)}" for reason in sorted(fired))
    return [f"{rule.node_type} '{node_id}' ({rule.formula or rule.rule}) closed none of the {len(closed)} trades: "
            f"{WHY[rule.node_type]} (exits: {counts}); check it with `stratexec explain`"
            for node_id, rule in nodes.items() if EXIT_REASONS.get(rule.node_type, node_id) not in fired]
