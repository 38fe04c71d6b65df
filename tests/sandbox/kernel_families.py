"""One compiled strategy per kernel family the compiler can emit, for the warm-pool tests.

Each family is a different set of vectorbt/numba kernels (one column or several,
grouped with shared cash, value sizing, trailing stops, ATR stops, weekly bars,
time exits). Add a family here when the compiler learns a new portfolio form
(shorts, next-open fills, ...); the pool test then runs it, and the warm parent
(services/sandbox/warm_parent.py, KERNEL_FAMILIES) must have compiled it.
"""
from __future__ import annotations

from services.codegen.compiler import analyze
from services.codegen.emit import emit
from stratexec.backtest.v1 import backtest_pb2

CROSS_IN = {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when the 20-day SMA crosses above the 50-day SMA"]}}
CROSS_OUT = {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Sell when the 20-day SMA crosses below the 50-day SMA"]}}
DIP = {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on a 5% price drop from the 20-day moving average"]}}
STOP_8 = {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 8.0}}
TP_7 = {"id": "tp", "type": "take_profit", "meta": {"target_pct": 7.0}}
TRAIL_10 = {"id": "trail", "type": "trailing_stop", "meta": {"trail_pct": 10.0}}
ATR_STOP = {"id": "sl", "type": "stop_loss", "meta": {"atr_multiple": 2.0}}
HOLD_10 = {"id": "hold", "type": "time_exit", "meta": {"max_bars": 10}}
WEEKLY_IN = {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when the 10-week SMA crosses above the 30-week SMA"]}}
EQUAL = {"id": "size", "type": "position_sizing", "meta": {"method": "equal"}}
SHORT_IN = {"id": "short", "type": "entry_condition", "meta": {"rules": ["Sell short when the 20-day SMA crosses below the 50-day SMA"]}}
COVER = {"id": "cover", "type": "exit_condition", "meta": {"rules": ["Cover when the 20-day SMA crosses above the 50-day SMA"]}}

ONE = dict(symbols=["BTC"], start_date="2024-01-01", end_date="2024-12-31")
TWO = dict(symbols=["BTC", "ETH"], start_date="2021-01-01", end_date="2024-12-31")

# family -> (strategy nodes, params)
FAMILIES = {
    "one-column": ([DIP, TP_7, STOP_8], ONE),
    "several-columns-shared-cash": ([CROSS_IN, CROSS_OUT, STOP_8], TWO),  # the case of issue 10
    "several-columns-equal-value": ([CROSS_IN, CROSS_OUT, STOP_8, EQUAL], TWO),
    "trailing-stop": ([DIP, TRAIL_10], ONE),
    "atr-stop": ([DIP, ATR_STOP], ONE),
    "several-columns-atr-stop": ([CROSS_IN, ATR_STOP], TWO),
    "weekly-bars": ([WEEKLY_IN, STOP_8], dict(ONE, start_date="2021-01-01", timeframe="1w")),
    "time-exit": ([DIP, HOLD_10], ONE),
    "stop-and-wider-trail-next-open": ([DIP, TP_7, STOP_8, TRAIL_10], dict(ONE, fill_at="next_open", reentry="next_bar")),
    "several-columns-target-first": ([CROSS_IN, CROSS_OUT, TP_7, STOP_8, TRAIL_10], dict(TWO, stop_target_order="target_first")),
    "one-column-short": ([SHORT_IN, COVER, TP_7, STOP_8], dict(ONE, direction="short")),
    "one-column-both-directions": ([CROSS_IN, CROSS_OUT, SHORT_IN, COVER, TRAIL_10], dict(ONE, direction="both")),
    "several-columns-both-directions": ([CROSS_IN, CROSS_OUT, SHORT_IN, COVER, STOP_8], dict(TWO, direction="both")),
    "one-column-risk-sizing": ([DIP, STOP_8, TRAIL_10], dict(ONE, position_sizing="risk", risk_per_trade=0.02)),
    "several-columns-equity-sizing-both": ([CROSS_IN, CROSS_OUT, SHORT_IN, COVER, STOP_8],
                                           dict(TWO, direction="both", position_sizing="equity", exposure=0.5)),
    "several-columns-fixed-cash": ([CROSS_IN, CROSS_OUT, STOP_8], dict(TWO, position_sizing="fixed", exposure=0.3)),
    "several-columns-both-equal-value": ([CROSS_IN, CROSS_OUT, SHORT_IN, COVER, STOP_8, EQUAL], dict(TWO, direction="both")),
}


def params(family: str) -> backtest_pb2.BacktestParams:
    return backtest_pb2.BacktestParams(**FAMILIES[family][1])


def script(family: str) -> str:
    nodes, _ = FAMILIES[family]
    return emit(analyze({"nodes": nodes}, params(family)))
