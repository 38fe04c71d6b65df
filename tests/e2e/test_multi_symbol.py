"""A portfolio of two symbols through the whole system, in the sandbox's default (warm pool) mode."""
from services.common.config import project_root
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_runtime.metrics import metrics_agree
from tests.e2e.conftest import run_by_hand, served_metrics

CROSSOVER_BTC_ETH = {"nodes": [
    {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when the 20-day SMA crosses above the 50-day SMA"]}},
    {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Sell when the 20-day SMA crosses below the 50-day SMA"]}},
    {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 8.0}},
]}


def test_btc_eth_crossover_with_a_stop_completes_in_the_pool_and_matches_the_script_run_by_hand(client, tmp_path):
    params = backtest_pb2.BacktestParams(symbols=["BTC", "ETH"], start_date="2021-01-01", end_date="2024-12-31")
    execution = client.execute(CROSSOVER_BTC_ETH, params)
    events = list(client.watch(execution.id))

    done = client.get(execution.id)
    assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, (done.error_message, [e.message for e in events][-5:])
    result = client.results(execution.id).result
    assert {t.symbol for t in result.trades} == {"BTC-USD", "ETH-USD"}
    assert {d.symbol for d in result.data} == {"BTC-USD", "ETH-USD"}
    assert result.equity[0].time.startswith("2021-01-01") and result.equity[-1].time.startswith("2024-12-31")

    by_hand = run_by_hand(client.code(execution.id).code, project_root() / "data" / "ohlcv", tmp_path)
    assert metrics_agree(by_hand["metrics"], served_metrics(result)) == []
    assert len(by_hand["trades"]) == len(result.trades)
