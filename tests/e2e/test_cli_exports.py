"""Getting results out: trades and equity as CSV, executions compared side by side, JSON with every field."""
from __future__ import annotations

import csv
import io
import json

from stratexec.backtest.v1 import backtest_pb2
from stratexec_cli.client import Client
from tests.e2e.conftest import btc_2024
from tests.e2e.test_cli import cli, figure_data

NEVER = {"nodes": [  # RSI(14) never falls below 1 on BTC in 2024: a run without a single trade
    {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when RSI(14) is below 1"]}},
    {"id": "tp", "type": "take_profit", "meta": {"target_pct": 5}},
]}


def test_trades_csv_has_a_row_per_trade_and_a_column_per_trade_field(orchestrator_addr, finished_example, tmp_path):
    execution_id, _ = finished_example
    result = Client(orchestrator_addr).results(execution_id).result
    proc = cli(orchestrator_addr, "trades", execution_id, "--csv", str(tmp_path / "trades.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "trades.csv").open()))
    assert list(rows[0]) == [f.name for f in backtest_pb2.Trade.DESCRIPTOR.fields]
    assert len(rows) == len(result.trades) == result.metrics.trades + result.metrics.open_trades
    for row, trade in zip(rows, result.trades):
        assert (row["entry_time"], float(row["entry_price"]), float(row["pnl"])) == (trade.entry_time, trade.entry_price, trade.pnl)
        assert row["status"] == backtest_pb2.TradeStatus.Name(trade.status).removeprefix("TRADE_STATUS_").lower()


def test_equity_csv_is_one_row_per_bar_with_the_benchmark(orchestrator_addr, finished_example):
    execution_id, _ = finished_example
    result = Client(orchestrator_addr).results(execution_id).result
    proc = cli(orchestrator_addr, "equity", execution_id)  # no FILE: standard output
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0] == ["time", "equity", "benchmark"]
    assert len(rows) - 1 == len(result.equity)
    assert float(rows[-1][1]) == result.equity[-1].value == result.metrics.final_value
    assert float(rows[-1][2]) == result.benchmark_equity[-1].value


def test_compare_prints_metrics_side_by_side_and_writes_an_overlay_chart(orchestrator_addr, finished_example, tmp_path):
    client = Client(orchestrator_addr)
    first, _ = finished_example
    second = client.execute(NEVER, btc_2024()).id
    list(client.watch(second))
    proc = cli(orchestrator_addr, "compare", first, second, "--html", str(tmp_path / "c.html"))
    assert proc.returncode == 0, proc.stderr
    header, rule, *rows = proc.stdout.split("\n\n")[0].splitlines()
    assert header.split() == ["METRIC", first[:8], second[:8]]
    trades = next(r for r in rows if r.startswith("Trades (closed)"))
    assert trades.split()[-2:] == [str(client.results(first).result.metrics.trades), "0"]
    traces = figure_data((tmp_path / "c.html").read_text())
    assert [t["name"] for t in traces] == [first[:8], second[:8]]


def test_json_results_keep_zero_valued_metrics(orchestrator_addr):
    client = Client(orchestrator_addr)
    execution_id = client.execute(NEVER, btc_2024()).id
    list(client.watch(execution_id))
    proc = cli(orchestrator_addr, "results", execution_id, "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["result"]["metrics"]
    assert metrics["trades"] == 0 and metrics["total_return"] == 0 and metrics["max_drawdown"] == 0
    optional = {f.name for f in backtest_pb2.Metrics.DESCRIPTOR.fields if f.has_presence}
    assert {f.name for f in backtest_pb2.Metrics.DESCRIPTOR.fields} - optional <= set(metrics)


def test_a_named_execution_shows_its_name_in_status_list_compare_and_the_report(orchestrator_addr, finished_example, tmp_path):
    (tmp_path / "never.json").write_text(json.dumps(NEVER))
    name = "RSI below 1, never trades"
    proc = cli(orchestrator_addr, "run", str(tmp_path / "never.json"), "--symbols", "BTC", "--start", "2024-01-01",
               "--end", "2024-12-31", "--name", name)
    assert proc.returncode == 0, proc.stderr
    named = proc.stdout.strip()
    client = Client(orchestrator_addr)
    list(client.watch(named))
    assert client.get(named).name == name

    status = cli(orchestrator_addr, "status", named)
    assert status.stdout.splitlines()[0] == f"{named}  completed  {name!r}"
    listed = cli(orchestrator_addr, "list", "--page-size", "500").stdout.splitlines()
    assert listed[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert any(row.startswith(f"{named}  {name}  completed") for row in listed[2:])
    first, _ = finished_example  # unnamed: its id stands for it
    compared = cli(orchestrator_addr, "compare", first, named, "--html", str(tmp_path / "c.html"))
    assert compared.stdout.splitlines()[0].split("  ")[-1].strip() == name
    assert [t["name"] for t in figure_data((tmp_path / "c.html").read_text())] == [first[:8], name]
    report = cli(orchestrator_addr, "report", named, "--html", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    assert f"<h1>Backtest report: {name}</h1>" in (tmp_path / "r.html").read_text(encoding="utf-8")
