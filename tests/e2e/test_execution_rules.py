"""Each execution rule option end to end through gRPC: the analysis states it,
the script says it, every trade has its exit reason, and the script run by hand
gives the same trades and metrics, on one symbol and on a portfolio."""
from __future__ import annotations

import pytest

from services.common.config import project_root
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_runtime.data import read_price_csv
from stratexec_runtime.metrics import metrics_agree
from tests.e2e.conftest import run_by_hand, served_metrics

DATA = project_root() / "data" / "ohlcv"
STRATEGY = {"nodes": [
    {"id": "cross", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}},
    {"id": "below50", "type": "exit_condition", "meta": {"rules": ["Exit when price is below the 50-day SMA"]}},
    {"id": "tp", "type": "take_profit", "meta": {"target_pct": 12}},
    {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 4}},
    {"id": "trail", "type": "trailing_stop", "meta": {"trail_pct": 8}},
]}
REASONS = {"tp", "sl", "trail", "below50", "end_of_data"}
DIRECTIONS = {backtest_pb2.TRADE_DIRECTION_LONG: "long", backtest_pb2.TRADE_DIRECTION_SHORT: "short"}

# case -> (params fields, words the analysis must contain)
CASES = {
    "defaults": ({}, ["fills at the close of its signal bar", "the stop is assumed", "is dropped", "higher of the two levels"]),
    "next_open": ({"fill_at": "next_open"}, ["fills at the open of the next bar"]),
    "target_first": ({"stop_target_order": "target_first"}, ["the target is assumed to come first"]),
    "reentry_next_bar": ({"reentry": "next_bar"}, ["carried to the next bar"]),
    "portfolio_next_open": ({"fill_at": "next_open", "symbols": ["BTC", "ETH"], "position_sizing": "equal"},
                            ["fills at the open of the next bar"]),
}
SHORTS = [
    {"id": "short", "type": "entry_condition", "meta": {"rules": ["Sell short when price crosses below the 20-day SMA"]}},
    {"id": "cover", "type": "exit_condition", "meta": {"rules": ["Cover when price is above the 50-day SMA"]}},
]
# case -> (strategy, params fields, words the analysis must contain, trade directions)
DIRECTION_CASES = {
    "short": ({"nodes": [*SHORTS, *STRATEGY["nodes"][2:]]}, {"direction": "short"},
              ["Direction: short: short positions only", "Short position: stop loss 4% above the entry price"], {"short"}),
}
# case -> (params fields, words the analysis must contain)
SIZING_CASES = {
    "risk": ({"position_sizing": "risk", "risk_per_trade": 0.02}, ["risk 2% of the equity per trade"]),
    "equity_portfolio_both": ({"position_sizing": "equity", "exposure": 0.5, "symbols": ["BTC", "ETH"], "direction": "both"},
                              ["each entry takes 50% of the equity", "Direction: both", "Sell short when",
                               "Short positions, mirrored"]),
    "fixed_portfolio": ({"position_sizing": "fixed", "exposure": 0.25, "symbols": ["BTC", "ETH"]},
                        ["fixed cash: each entry buys 2500 worth"]),
}


@pytest.mark.parametrize("case", list(DIRECTION_CASES))
def test_short_and_both_directions_run_end_to_end_and_by_hand_alike(client, case, tmp_path):
    strategy, fields, words, directions = DIRECTION_CASES[case]
    result = run_and_compare(client, strategy, fields, words, tmp_path, reasons=REASONS | {"cover"})
    assert {DIRECTIONS[t.direction] for t in result.trades} == directions


@pytest.mark.parametrize("case", list(SIZING_CASES))
def test_each_allocation_runs_end_to_end_and_by_hand_alike(client, case, tmp_path):
    fields, words = SIZING_CASES[case]
    strategy = {"nodes": [*STRATEGY["nodes"], *SHORTS]} if fields.get("direction") == "both" else STRATEGY
    result = run_and_compare(client, strategy, fields, words, tmp_path, reasons=REASONS | {"cover"})
    before = {p.time: result.equity[i - 1].value if i else 10_000.0 for i, p in enumerate(result.equity)}
    values = [t.entry_price * t.size for t in result.trades]  # entry prices include the slippage
    if case == "risk":  # the stop 4% is the tighter one: 2% / 4% = half the equity before the entry bar
        assert [v / before[t.entry_time] for v, t in zip(values, result.trades)] == pytest.approx([0.5 * 1.0005] * len(values))
    if case == "fixed_portfolio":  # 0.25 x 10,000 worth at the close, the slippage on top; less only when cash runs short
        assert all(v <= 2500 * 1.0005 * (1 + 1e-9) for v in values) and values.count(pytest.approx(2500 * 1.0005)) >= len(values) // 2
    if fields.get("direction") == "both":
        assert {(t.symbol, DIRECTIONS[t.direction]) for t in result.trades} == {
            (s, d) for s in ("BTC-USD", "ETH-USD") for d in ("long", "short")}
    assert len(values) >= 3


@pytest.mark.parametrize("case", list(CASES))
def test_each_rule_option_runs_end_to_end_and_by_hand_alike(client, case, tmp_path):
    fields, words = CASES[case]
    result = run_and_compare(client, STRATEGY, fields, words, tmp_path)
    # Every entry filled where fill_at says, checked on the CSV: the bar's close, or its open (the bar after the
    # signal), plus the slippage.
    field = "open" if fields.get("fill_at") == "next_open" else "close"
    bars = {s: read_price_csv(DATA / f"{s}.csv") for s in {t.symbol for t in result.trades}}
    assert [t.entry_price for t in result.trades] == pytest.approx(
        [bars[t.symbol].loc[t.entry_time, field] * 1.0005 for t in result.trades], rel=1e-9)


def run_and_compare(client, strategy, fields, words, tmp_path, reasons=REASONS):
    params = backtest_pb2.BacktestParams(**({"symbols": ["BTC"], "start_date": "2023-01-01", "end_date": "2024-06-30"} | fields))
    execution = client.execute(strategy, params)
    events = list(client.watch(execution.id))
    assert events[-1].status == execution_pb2.EXECUTION_STATUS_COMPLETED, events[-1]
    result = client.results(execution.id).result

    interpretation = " ".join(r["interpretation"] for r in client.get(execution.id).agent_insights["interpretation"])
    assert all(w in interpretation for w in words), interpretation
    code = client.code(execution.id).code
    for name in ("fill_at", "stop_target_order", "reentry"):
        value = getattr(params, name) or {"fill_at": "close", "stop_target_order": "stop_first", "reentry": "skip"}[name]
        assert f'"{name}": "{value}",' in code
    assert "# Execution rules" in code

    assert result.metrics.trades >= 3
    assert {t.exit_reason for t in result.trades} <= reasons
    assert all(t.exit_reason == "end_of_data" for t in result.trades if t.status == backtest_pb2.TRADE_STATUS_OPEN)
    assert result.open_trades_pnl == pytest.approx(
        sum(t.pnl for t in result.trades if t.status == backtest_pb2.TRADE_STATUS_OPEN))

    by_hand = run_by_hand(code, DATA, tmp_path)
    assert metrics_agree(by_hand["metrics"], served_metrics(result)) == []
    assert [(t["symbol"], t["entry_time"], t["exit_time"], t["exit_reason"]) for t in by_hand["trades"]] == [
        (t.symbol, t.entry_time, t.exit_time, t.exit_reason) for t in result.trades]
    assert [(s["symbol"], s["time"], s["reason"]) for s in by_hand["skipped_signals"]] == [
        (s.symbol, s.time, s.reason) for s in result.skipped_signals]
    return result
