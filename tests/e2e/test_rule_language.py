"""The rule language through the whole stack: a custom indicator and a pronoun-bound exit run end to end; a run
with no trade says so in the event stream, the insights and the CLI's output."""
from __future__ import annotations

import json
import re

import grpc
import pytest

from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2 as S
from tests.e2e.conftest import btc_2024
from tests.e2e.test_cli import cli

CUSTOM = {"nodes": [
    {"id": "osc", "type": "indicator", "meta": {"name": "my_osc", "expression": "(close - sma(close, 10)) / atr(14)"}},
    {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when my_osc crosses above 1.5"]}},
    {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Exit when it is below 0"]}},
]}


def warnings_of(events) -> list[str]:
    return [e.log.message for e in events if e.type == S.EVENT_TYPE_LOG and e.log.level == S.LOG_LEVEL_WARNING]


def test_custom_indicator_strategy_runs_end_to_end(client):
    execution = client.execute(CUSTOM, btc_2024())
    events = list(client.watch(execution.id))
    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, client.get(execution.id).error_message
    result = client.results(execution.id).result
    assert result.metrics.trades > 0
    code = client.code(execution.id).code
    assert "ind_my_osc = ((close - (close).rolling(10).mean()) / atr_14)" in code
    assert "exits = ind_my_osc < 0" in code  # "it" bound to my_osc, not to the close


def test_a_run_with_no_trade_is_warned_in_the_events_and_the_cli(orchestrator_addr, client, tmp_path):
    path = tmp_path / "never.json"
    path.write_text(json.dumps({"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when the price is above 10000000"]}},
        {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 5}},
    ]}))
    proc = cli(orchestrator_addr, "run", str(path), "--symbols", "BTC", "--start", "2024-01-01", "--end", "2024-12-31", "--watch")
    assert proc.returncode == 0, proc.stderr
    assert "! no trade: the entry condition" in proc.stdout  # the CLI prints the warnings with the results
    execution_id = proc.stdout.splitlines()[0].split()[-1]
    warned = [w for w in warnings_of(client.watch(execution_id)) if w.startswith("no trade:")]
    assert warned and '"Buy when the price is above 10000000" (close > 10000000' in warned[0]
    assert any(w.startswith("no trade:") for w in client.get(execution_id).agent_insights["warnings"])


def test_an_exit_and_a_target_that_never_closed_a_trade_are_warned_by_node(client):
    import talib

    from services.common.config import project_root
    from stratexec_runtime.data import read_price_csv

    close = read_price_csv(project_root() / "data" / "ohlcv" / "BTC-USD.csv")["close"]
    assert talib.RSI(close.to_numpy(), 14)[close.index.year == 2024].max() < 99  # TA-Lib: the exit cannot fire
    execution = client.execute({"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}},
        {"id": "hot", "type": "exit_condition", "meta": {"rules": ["Exit when RSI(14) is above 99"]}},
        {"id": "moon", "type": "take_profit", "meta": {"target_pct": 500}},
        {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 2}},
    ]}, btc_2024())
    warned = [w for w in warnings_of(client.watch(execution.id)) if "closed none of" in w]
    assert [w.split(" (")[0] for w in warned] == ["exit_condition 'hot'", "take_profit 'moon'"]
    trades = client.results(execution.id).result.trades
    assert {t.exit_reason for t in trades if t.status == backtest_pb2.TRADE_STATUS_CLOSED} == {"sl"}
    assert warned == [w for w in client.get(execution.id).agent_insights["warnings"] if "closed none of" in w]


def test_an_indicator_saved_once_is_used_by_name_in_a_later_strategy(orchestrator_addr, tmp_path):
    from stratexec_cli.client import Client, ClientError
    from tests.codegen.heldout_oracle import Bars, atr
    from services.common.config import project_root
    from stratexec_runtime.data import read_price_csv

    saver = cli(orchestrator_addr, "--user", "indicator-saver", "indicators", "save", "my_osc", "(close - sma(close, 10)) / atr(14)")
    assert saver.returncode == 0 and saver.stdout.strip() == "saved my_osc = (close - sma(close, 10)) / atr(14)", saver.stderr
    listed = cli(orchestrator_addr, "--user", "indicator-saver", "indicators", "list").stdout.splitlines()
    assert listed[2].split(maxsplit=1) == ["my_osc", "(close - sma(close, 10)) / atr(14)"]

    client = Client(orchestrator_addr, user="indicator-saver")
    strategy = {"nodes": [  # no indicator node: the saved definition is used
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when my_osc crosses above 1.5"]}},
        {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Exit when my_osc is below 0"]}},
    ]}
    execution = client.execute(strategy, btc_2024())
    assert list(client.watch(execution.id))[-1].status == S.EXECUTION_STATUS_COMPLETED
    said = {r["node_id"]: r["rule"] for r in client.get(execution.id).agent_insights["interpretation"]}
    assert said["saved_my_osc"] == "my_osc = (close - sma(close, 10)) / atr(14)"
    result = client.results(execution.id).result
    assert result.metrics.trades > 0
    [line] = [line for line in result.lines if line.kind == backtest_pb2.CHART_LINE_KIND_INDICATOR]
    # pandas on the bars the script reads: its warm-up before start_date, then the window
    warmup = int(re.search(r'"warmup_bars": (\d+)', client.code(execution.id).code).group(1))
    bars = read_price_csv(project_root() / "data" / "ohlcv" / "BTC-USD.csv").loc[:"2024-12-31"]
    first = bars.index.get_loc(bars.loc["2024-01-01":].index[0])
    d = Bars(bars.iloc[first - warmup:])
    want = ((d.c - d.c.rolling(10).mean()) / atr(d, 14)).loc["2024-01-01":]
    assert [p.time for p in line.points] == [t.strftime("%Y-%m-%d") for t in want.index]
    assert [p.value for p in line.points] == pytest.approx(want.tolist(), rel=1e-9)

    # Stored as a strategy, it keeps the definition it was given.
    from google.protobuf import json_format

    nodes = json_format.MessageToDict(client.create_strategy(strategy).schema)["nodes"]
    assert nodes[0] == {"id": "saved_my_osc", "type": "indicator",
                        "meta": {"name": "my_osc", "expression": "(close - sma(close, 10)) / atr(14)"}}

    # Another user has no such indicator: the rule is not understood.
    with pytest.raises(ClientError) as unknown:
        Client(orchestrator_addr, user="someone-else").execute(strategy, btc_2024())
    assert unknown.value.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    with pytest.raises(ClientError) as bad:
        client.save_indicator("broken", "sma(close, ")
    assert bad.value.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "expression" in str(bad.value)


def test_without_a_language_model_a_rule_not_understood_is_rejected_at_submit(client):
    """Only a configured model may interpret a rule (tests/e2e/test_claude_path.py); here none is, so
    accept_interpreted_rules changes nothing but the message, which says so."""
    from services.common import errors
    from stratexec_cli.client import ClientError

    strategy = {"nodes": [{"id": "entry", "type": "entry_condition",
                           "meta": {"rules": ["Buy when the stock looks oversold"]}}]}
    rejected = []
    for accept in (False, True):
        with pytest.raises(ClientError) as failure:
            client.execute(strategy, btc_2024(), accept_interpreted_rules=accept)
        assert failure.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert errors.error_info(failure.value.status).reason == "RULE_NOT_UNDERSTOOD"
        rejected.append(str(failure.value))
    assert "accept_interpreted_rules has no effect" not in rejected[0]
    assert "accept_interpreted_rules has no effect: no language model is configured" in rejected[1]


def test_the_strategy_analyzer_finds_saved_indicators_and_their_past_uses_in_memory(orchestrator_addr):
    """Saving an indicator copies it to memory; a strategy that uses it is remembered with its definition; a
    later analysis finds both (the Strategy Analyzer's memory search step, and its findings)."""
    from stratexec_cli.client import Client

    client = Client(orchestrator_addr, user="indicator-recaller")
    client.save_indicator("gap_osc", "(open - lag(close, 1)) / atr(14)")
    first = client.execute({"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when gap_osc crosses above 0.5"]}},
        {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Exit when gap_osc is below -0.5"]}},
    ]}, btc_2024())
    events = list(client.watch(first.id))
    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED, client.get(first.id).error_message
    [search] = [e.agent_step for e in events if e.agent_step.tool == "search_strategy_memory"]
    assert search.agent == "Strategy Analyzer"
    assert "Custom indicator gap_osc = (open - lag(close, 1)) / atr(14)" in search.result

    later = client.execute({"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when gap_osc crosses above 1"]}},
        {"id": "tp", "type": "take_profit", "meta": {"target_pct": 5}},
    ]}, btc_2024())
    assert list(client.watch(later.id))[-1].status == S.EXECUTION_STATUS_COMPLETED
    past = [f for f in client.get(later.id).insights.memory_findings if f.metadata["execution_id"] == first.id]
    assert past and "gap_osc = (open - lag(close, 1)) / atr(14)" in past[0].memory
    assert past[0].metadata["custom_indicators"] == "gap_osc"

    client.delete_indicator("gap_osc")  # and memory forgets it
    again = client.execute({"nodes": [
        {"id": "osc", "type": "indicator", "meta": {"name": "gap_osc", "expression": "(open - lag(close, 1)) / atr(14)"}},
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when gap_osc crosses above 1"]}},
        {"id": "tp", "type": "take_profit", "meta": {"target_pct": 5}},
    ]}, btc_2024())
    events = list(client.watch(again.id))
    [search] = [e.agent_step for e in events if e.agent_step.tool == "search_strategy_memory"]
    assert '"saved_indicators": []' in search.result
