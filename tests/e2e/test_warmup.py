"""A long warm-up through the whole system: the sandbox gives all the history before start_date, the
script reads what it needs, the run equals the script run by hand on the full CSV, and the execution
warns when the data cannot give the warm-up the indicators need."""
from services.common.config import project_root
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_runtime.metrics import metrics_agree
from tests.e2e.conftest import run_by_hand, served_metrics

EMA_150_WEEKS = {"nodes": [
    {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when price crosses above the 150-week EMA"]}},
    {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Sell when price crosses below the 150-week EMA"]}},
]}


def test_a_150_week_ema_reads_all_the_history_matches_by_hand_and_warns_of_the_short_data(client, tmp_path):
    params = backtest_pb2.BacktestParams(symbols=["BTC"], timeframe="1w", start_date="2021-01-01", end_date="2024-12-31")
    execution = client.execute(EMA_150_WEEKS, params)
    list(client.watch(execution.id))
    done = client.get(execution.id)
    assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, done.error_message

    result = client.results(execution.id).result
    # BTC-USD starts 2014-09-17: 329 weekly bars before 2021-01-01, all of them in the prepared file
    # (the old 2,000-day cap gave about 285); the EMA needs 3 * 151 + 1.
    assert result.data[0].warmup_bars == 329
    warnings = [w for w in done.agent_insights["warnings"] if "to settle" in w]
    assert warnings == ["BTC-USD: the indicators need 454 weekly bars before 2021-01-01 to settle, the data has 329: "
                        "their first values depend on where the data starts (the same script on a longer history "
                        "gives other signals at first)"]

    by_hand = run_by_hand(client.code(execution.id).code, project_root() / "data" / "ohlcv" / "BTC-USD.csv", tmp_path)
    assert metrics_agree(by_hand["metrics"], served_metrics(result)) == []
    assert [t["entry_time"] for t in by_hand["trades"]] == [t.entry_time for t in result.trades]
    assert result.equity[-1].time == "2024-12-31"  # the last weekly bar is dated by its last day, inside the window
