"""Prices raw or total return, and the benchmark of a portfolio, end to end
through gRPC. On SPY 2010-2024 the
buy-and-hold benchmark is the price return with raw prices and the total
return with dividends reinvested, each equal to what Yahoo's own close and
adjusted close give (computed here with plain pandas from the bundled file,
no stratexec code); a portfolio's benchmark is its symbols in equal parts,
bought and held. The analysis and the script say which, and the script run
by hand agrees."""
from __future__ import annotations

import pandas as pd
import pytest

from services.common.config import project_root
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_runtime.metrics import metrics_agree
from tests.e2e.conftest import EXAMPLE, run_by_hand, served_metrics

DATA = project_root() / "data" / "ohlcv"
START, END = "2010-01-01", "2024-12-31"
STRATEGY = {"nodes": [
    {"id": "cross", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}},
    {"id": "below50", "type": "exit_condition", "meta": {"rules": ["Exit when price is below the 50-day SMA"]}},
]}


def yahoo_return(column: str, symbol: str = "SPY", start: str = START, end: str = END) -> float:
    """Buy at the first close of the window, hold to the last: percent, from the CSV with pandas alone."""
    prices = pd.read_csv(DATA / f"{symbol}.csv", index_col="date", parse_dates=True).loc[start:end, column]
    return (prices.iloc[-1] / prices.iloc[0] - 1) * 100


@pytest.mark.parametrize("prices, column, words", [
    ("raw", "close", "dividends are not counted"),
    ("total_return", "adj_close", "dividends reinvested"),
])
def test_the_benchmark_is_the_price_or_the_total_return_of_yahoos_data(client, tmp_path, prices, column, words):
    params = backtest_pb2.BacktestParams(symbols=["SPY"], start_date=START, end_date=END, fees=0, slippage=0,
                                         prices=prices)
    execution = client.execute(EXAMPLE, params)
    assert list(client.watch(execution.id))[-1].status == execution_pb2.EXECUTION_STATUS_COMPLETED
    result = client.results(execution.id).result

    assert result.metrics.benchmark_return == pytest.approx(yahoo_return(column), abs=0.01)  # to the basis point
    rule = next(r for r in client.get(execution.id).insights.interpretation if r.node_id == "prices")
    assert rule.rule == f"prices: {prices}" and words in rule.interpretation
    code = client.code(execution.id).code
    assert f'"prices": "{prices}",' in code and words in code  # in PARAMS and in the rules' comment
    by_hand = run_by_hand(code, DATA, tmp_path)
    assert metrics_agree(by_hand["metrics"], served_metrics(result)) == []



def test_a_portfolios_benchmark_is_its_symbols_in_equal_parts_bought_and_held(client, tmp_path):
    params = backtest_pb2.BacktestParams(symbols=["BTC", "ETH"], start_date="2023-01-01", end_date="2024-12-31",
                                         fees=0, slippage=0, position_sizing="equal")
    execution = client.execute(STRATEGY, params)
    assert list(client.watch(execution.id))[-1].status == execution_pb2.EXECUTION_STATUS_COMPLETED
    result = client.results(execution.id).result
    done = client.get(execution.id)

    halves = [yahoo_return("close", s, "2023-01-01", "2024-12-31") for s in ("BTC-USD", "ETH-USD")]
    assert result.metrics.benchmark_return == pytest.approx(sum(halves) / 2, abs=0.01)  # 319.73%
    assert done.params.benchmark == "portfolio"
    rule = next(r for r in done.insights.interpretation if r.node_id == "benchmark")
    assert "BTC-USD, ETH-USD) in equal parts" in rule.interpretation
    by_hand = run_by_hand(client.code(execution.id).code, DATA, tmp_path)
    assert metrics_agree(by_hand["metrics"], served_metrics(result)) == []
