"""The `stratexec` console script, run as a real subprocess against the session stack."""
from __future__ import annotations

import fcntl
import html
import json
import os
import pathlib
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from services.common.config import project_root
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2, insights_pb2
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE

STRATEXEC = pathlib.Path(sys.executable).parent / "stratexec"
STRATEGY = project_root() / "examples" / "strategy.json"
STAGES = ["queued", "analyzing", "generating_code", "executing", "completed"]
# A bound against hangs, not a timing assertion: a whole execution takes seconds.
LIMIT = 180


def cli(addr: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(STRATEXEC), "--addr", addr, *args], capture_output=True, text=True,
                          timeout=LIMIT, cwd=cwd, stdin=subprocess.DEVNULL)


def run_example_args(*extra: str) -> list[str]:
    return ["run", str(STRATEGY), "--symbols", "BTC", "--start", "2024-01-01", "--end", "2024-12-31", *extra]


def one_line_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    for text in expected:
        assert text in lines[0], proc.stderr
    return lines[0]


def figure_data(page: str) -> list[dict]:
    """The traces passed to Plotly.newPlot in a report written by plotly's to_html."""
    call = page.index("Plotly.newPlot(")
    return json.JSONDecoder().raw_decode(page, page.index("[", call))[0]


def values(array) -> list:
    """Trace arrays are plain lists here; plotly may encode numpy arrays as typed base64."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


@pytest.fixture(scope="module")
def example_results(orchestrator_addr, finished_example):
    execution_id, _ = finished_example
    return Client(orchestrator_addr).results(execution_id)


# --- run, status, code, results, watch, list -------------------------------------------------

def test_run_watch_prints_the_statuses_in_order_then_the_metrics(orchestrator_addr, client):
    proc = cli(orchestrator_addr, *run_example_args("--watch"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    first = re.fullmatch(r"execution ([0-9a-f-]{36})", lines[0])
    assert first, lines[0]
    execution_id = first.group(1)
    # Not a terminal: one plain line per event, as `make demo` shows it.
    assert re.findall(r"#\d+\s+status: (\w+)", proc.stdout) == STAGES
    for agent in ("Strategy Analyzer", "Code Generator", "Code Executor"):
        assert f"  {agent}: " in proc.stdout
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout
    result = client.results(execution_id).result
    table = proc.stdout[proc.stdout.index("  Total return"):]
    assert f"Total return      {result.metrics.total_return:,.2f}%" in table
    assert re.search(rf"Trades \(closed\)\s+{result.metrics.trades}\n", table)
    assert "bundled" in table  # the data provenance line
    assert re.search(r"Interpretation\n  entry +close <= 0\.95 \* SMA\(close, 20\), evaluated at bar close", proc.stdout)
    assert client.get(execution_id).status == execution_pb2.EXECUTION_STATUS_COMPLETED


def test_run_without_watch_prints_the_id_and_json_prints_the_execution(orchestrator_addr, client):
    proc = cli(orchestrator_addr, *run_example_args("--request-id", "cli-test-run-no-watch"))
    assert proc.returncode == 0, proc.stderr
    execution_id = proc.stdout.strip()
    assert client.get(execution_id).request_id == "cli-test-run-no-watch"
    # The same request id again is the same execution (idempotent), here as JSON.
    again = cli(orchestrator_addr, "--json", *run_example_args("--request-id", "cli-test-run-no-watch"))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["id"] == execution_id
    list(client.watch(execution_id))  # let it finish before the stack goes away


def test_run_watch_json_is_one_document_per_line(orchestrator_addr, client):
    proc = cli(orchestrator_addr, "--json", *run_example_args("--watch"))
    assert proc.returncode == 0, proc.stderr
    *events, results = [json.loads(line) for line in proc.stdout.splitlines()]
    statuses = [e["status"] for e in events if e["type"] == "EVENT_TYPE_STATUS_CHANGED"]
    assert statuses == [f"EXECUTION_STATUS_{s.upper()}" for s in STAGES]
    assert [int(e["sequence"]) for e in events] == list(range(1, len(events) + 1))
    execution_id = events[0]["execution_id"]
    assert results["backtest_run_id"] == client.get(execution_id).backtest_run_id
    assert results["result"]["metrics"]["trades"] == client.results(execution_id).result.metrics.trades


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_status_parses(orchestrator_addr, finished_example, where):
    execution_id, _ = finished_example
    args = ["--json", "status", execution_id] if where == "before" else ["status", execution_id, "--json"]
    proc = cli(orchestrator_addr, *args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["id"] == execution_id
    assert doc["status"] == "EXECUTION_STATUS_COMPLETED"
    nodes = [item["node_id"] for item in doc["agent_insights"]["interpretation"] if item["node_type"] != "execution_rule"]
    assert nodes == [n["id"] for n in EXAMPLE["nodes"]]


def test_plain_status_is_the_status_then_how_each_rule_was_read(orchestrator_addr, finished_example):
    execution_id, _ = finished_example
    proc = cli(orchestrator_addr, "status", execution_id)
    assert proc.returncode == 0, proc.stderr
    first, heading, *rules = proc.stdout.splitlines()
    assert first.split() == [execution_id, "completed"]
    assert heading == "Interpretation"
    named = [line.split()[0] for line in rules]
    assert named[:3] == [n["id"] for n in EXAMPLE["nodes"]] and "fill_at" in named  # the nodes, then the execution rules
    assert "close <= 0.95 * SMA(close, 20)" in rules[0]


def test_code_prints_the_generated_script(orchestrator_addr, client, finished_example):
    execution_id, _ = finished_example
    proc = cli(orchestrator_addr, "code", execution_id)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == client.code(execution_id).code
    compile(proc.stdout, "generated.py", "exec")  # a Python script, not a message about one
    assert "import" in proc.stdout


def test_results_table_and_json(orchestrator_addr, finished_example, example_results):
    execution_id, _ = finished_example
    metrics = example_results.result.metrics
    proc = cli(orchestrator_addr, "results", execution_id)
    assert proc.returncode == 0, proc.stderr
    assert f"{metrics.max_drawdown:,.2f}%" in proc.stdout
    assert re.search(rf"Open trades\s+{metrics.open_trades}\n", proc.stdout)
    as_json = cli(orchestrator_addr, "--json", "results", execution_id)
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert len(doc["result"]["trades"]) == len(example_results.result.trades)
    assert doc["backtest_run_id"] == example_results.backtest_run_id


def test_json_watch_is_one_event_per_line(orchestrator_addr, finished_example):
    execution_id, events = finished_example
    proc = cli(orchestrator_addr, "--json", "watch", execution_id)
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [int(d["sequence"]) for d in docs] == [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert docs[-1]["status"] == "EXECUTION_STATUS_COMPLETED"
    assert {d["execution_id"] for d in docs} == {execution_id}


def test_plain_watch_of_a_finished_execution_replays_it(orchestrator_addr, finished_example):
    execution_id, _ = finished_example
    proc = cli(orchestrator_addr, "watch", execution_id)
    assert proc.returncode == 0, proc.stderr
    assert re.findall(r"status: (\w+)", proc.stdout) == STAGES


def test_list_shows_a_table_and_json(orchestrator_addr, finished_example):
    execution_id, _ = finished_example
    proc = cli(orchestrator_addr, "list", "--page-size", "500")
    assert proc.returncode == 0, proc.stderr
    header, rule, *rows = proc.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATUS", "CREATED"]
    assert set(rule.replace(" ", "")) == {"-"}
    row = next(r for r in rows if r.startswith(execution_id))
    assert row.split()[1] == "completed"
    assert "BTC-USD" in row and "2024-01-01..2024-12-31" in row
    metrics = Client(orchestrator_addr).results(execution_id).result.metrics
    assert header.split()[-4:] == ["RETURN", "SHARPE", "TRADES", "STRATEGY"]
    # columns are as wide as their widest value (an optimization's return may be wider)
    assert f" {metrics.total_return:+.2f}% " in row and f" {metrics.sharpe_ratio:.2f} " in row
    assert "enter when close <= 0.95 * SMA(close, 20)" in row
    as_json = cli(orchestrator_addr, "list", "--json", "--page-size", "500")
    assert as_json.returncode == 0, as_json.stderr
    ids = [e["id"] for e in json.loads(as_json.stdout)["executions"]]
    assert execution_id in ids
    assert len(ids) == len(rows)


def test_list_pages(orchestrator_addr, client, finished_example):
    total = len(client.list(page_size=500).executions)
    assert total >= 2  # the example and the runs above (or at least the example and this module's run)
    proc = cli(orchestrator_addr, "list", "--page-size", "1")
    assert proc.returncode == 0, proc.stderr
    table, _, more = proc.stdout.partition("\nmore: ")
    assert len(table.strip().splitlines()) == 3  # header, rule, one row
    token = more.split("--page-token ", 1)[1].strip()
    second = cli(orchestrator_addr, "--json", "list", "--page-size", "1", "--page-token", token)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["executions"][0]["id"] not in table


# --- report -----------------------------------------------------------------------------------

def test_report_writes_an_offline_plotly_page(orchestrator_addr, client, finished_example, example_results, tmp_path):
    execution_id, _ = finished_example
    out = tmp_path / "out.html"
    proc = cli(orchestrator_addr, "report", execution_id, "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout
    page = out.read_text(encoding="utf-8")
    result = example_results.result
    traces = {t.get("name"): t for t in figure_data(page)}
    assert {"Strategy equity", "Strategy drawdown", "BTC-USD price", "BTC-USD entries", "BTC-USD exits"} <= set(traces)
    assert any(name.startswith("Benchmark (BTC-USD") for name in traces)

    # Equity and drawdown follow the results; the drawdown's low is the reported max drawdown.
    assert values(traces["Strategy equity"]["y"]) == [p.value for p in result.equity]
    dd = values(traces["Strategy drawdown"]["y"])
    assert max(dd) <= 0
    assert min(dd) == pytest.approx(result.metrics.max_drawdown, abs=1e-6)

    # One entry marker per trade, one exit per closed trade, drawn on the price chart.
    closed = [t for t in result.trades if t.status == backtest_pb2.TRADE_STATUS_CLOSED]
    entries, exits, price = traces["BTC-USD entries"], traces["BTC-USD exits"], traces["BTC-USD price"]
    assert len(result.trades) > 0 and len(closed) > 0
    assert values(entries["x"]) == [t.entry_time for t in result.trades]
    assert values(entries["y"]) == pytest.approx([t.entry_price for t in result.trades])
    assert values(exits["x"]) == [t.exit_time for t in closed]
    assert price["type"] == "candlestick"
    assert entries.get("yaxis") == exits.get("yaxis") == price.get("yaxis") != traces["Strategy equity"].get("yaxis")
    assert len(values(price["x"])) == result.data[0].bars

    # On the same chart: the SMA the entry rule reads, and the stop and target of each position (gaps between).
    assert [(line.name, line.kind) for line in result.lines] == [
        ("SMA(close, 20)", backtest_pb2.CHART_LINE_KIND_INDICATOR), ("stop", backtest_pb2.CHART_LINE_KIND_STOP),
        ("target", backtest_pb2.CHART_LINE_KIND_TARGET)]
    for line in result.lines:
        drawn = traces[f"BTC-USD {line.name}"]
        assert drawn.get("yaxis") == price.get("yaxis")
        at = dict(zip(values(drawn["x"]), values(drawn["y"])))
        assert {t: v for t, v in at.items() if v is not None} == {p.time: p.value for p in line.points}
    stop = {p.time: p.value for p in result.lines[1].points}
    first = result.trades[0]
    assert stop[result.equity[[p.time for p in result.equity].index(first.entry_time) + 1].time] == pytest.approx(
        first.entry_price / 1.0005 * 0.95)  # 5% under the entry's close (the fill less its slippage)

    # The header: metrics, the interpretation of each node, provenance; and nothing fetched from the network.
    insights = client.get(execution_id).agent_insights
    for item in insights["interpretation"]:
        assert html.escape(item["formula"]) in page
        assert f"<td>{html.escape(item['node_id'])}</td>" in page
    assert f"{result.metrics.total_return:,.2f}%" in page
    assert "plotly.js v" in page  # the library itself is embedded
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)


def test_report_without_html_writes_report_id_html_and_json_describes_it(orchestrator_addr, finished_example,
                                                                       example_results, tmp_path):
    execution_id, _ = finished_example
    proc = cli(orchestrator_addr, "--json", "report", execution_id, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    written = tmp_path / f"report-{execution_id}.html"
    assert written.is_file()
    assert pathlib.Path(doc["html"]).name == written.name
    assert doc["trades"] == len(example_results.result.trades)
    assert doc["trades_on"] == {"BTC-USD": "price"}
    assert doc["notes"] == []


def test_report_marks_trades_on_equity_when_prices_are_not_bundled(client, finished_example, example_results):
    from stratexec_cli import report

    execution_id, _ = finished_example
    execution = client.get(execution_id)
    reply = execution_pb2.GetBacktestResultsResponse()
    reply.CopyFrom(example_results)
    reply.result.data[0].provider = "yfinance"
    built = report.render_html(execution, reply)
    assert built.trades_on == {"BTC-USD": "equity"}
    assert any("yfinance" in note and "equity" in note for note in built.notes)
    assert html.escape(built.notes[0]) in built.html  # the page says so
    traces = {t["name"]: t for t in figure_data(built.html)}
    assert "BTC-USD price" not in traces
    entries = traces["BTC-USD entries"]
    assert entries.get("yaxis", "y") == traces["Strategy equity"].get("yaxis", "y")
    equity = {p.time: p.value for p in reply.result.equity}
    assert values(entries["y"]) == [equity[t.entry_time] for t in reply.result.trades]


def test_report_falls_back_to_equity_when_the_price_file_is_missing(client, finished_example, example_results, tmp_path):
    from stratexec_cli import report

    execution_id, _ = finished_example
    built = report.render_html(client.get(execution_id), example_results, prices_dir=tmp_path)
    assert built.trades_on == {"BTC-USD": "equity"}
    assert any("cannot read the bundled prices" in note for note in built.notes)


def test_the_chart_drawdown_starts_its_peak_at_the_initial_capital_like_max_drawdown():
    """A curve that opens below the initial capital: the chart and max_drawdown agree (the CLI had its own
    drawdown whose first peak was the first bar, so it showed 0% here while max_drawdown said -10%)."""
    import pandas as pd

    from stratexec_runtime.metrics import compute_metrics, drawdown_pct

    values = [90.0, 120.0, 90.0, 130.0, 65.0]
    assert drawdown_pct(values, 100.0) == pytest.approx([-10, 0, -25, 0, -50])
    curve = pd.Series([90.0, 95.0, 99.0], index=pd.date_range("2024-01-01", periods=3))
    chart = drawdown_pct(curve.tolist(), 100.0)
    assert min(chart) == pytest.approx(compute_metrics(curve, [], 100.0)["max_drawdown"]) == pytest.approx(-10.0)


# --- bad input ----------------------------------------------------------------------------------

def test_missing_strategy_file_is_a_one_line_error(orchestrator_addr, tmp_path):
    proc = cli(orchestrator_addr, "run", str(tmp_path / "nope.json"), "--watch")
    one_line_error(proc, "nope.json", "No such file")
    assert proc.stdout == ""


def test_strategy_file_that_is_not_json_is_a_one_line_error(orchestrator_addr, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nodes: [")
    assert one_line_error(cli(orchestrator_addr, "run", str(bad)), "not valid JSON").startswith("error: ")


def test_invalid_parameters_are_a_one_line_error_with_the_field(orchestrator_addr):
    proc = cli(orchestrator_addr, "run", str(STRATEGY), "--start", "2024-12-31", "--end", "2024-01-01", "--watch")
    assert "end_date" in one_line_error(proc, "INVALID_ARGUMENT", "end_date")
    assert proc.returncode == 2


@pytest.mark.parametrize("command", [["status"], ["code"], ["results"], ["watch"], ["cancel"],
                                     ["report", "--html", "never.html"]])
def test_unknown_execution_id_is_a_one_line_error(orchestrator_addr, command, tmp_path):
    proc = cli(orchestrator_addr, command[0], "00000000-0000-0000-0000-000000000000", *command[1:], cwd=tmp_path)
    one_line_error(proc, "NOT_FOUND")
    assert proc.returncode == 2
    assert not (tmp_path / "never.html").exists()


def test_cancelling_a_finished_execution_is_a_one_line_error(orchestrator_addr, finished_example):
    execution_id, _ = finished_example
    proc = cli(orchestrator_addr, "cancel", execution_id)
    assert "FAILED_PRECONDITION" in one_line_error(proc, "FAILED_PRECONDITION") and proc.returncode == 2


def test_unreachable_server_is_a_one_line_error():
    import socket

    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = cli(f"127.0.0.1:{port}", "status", "x")
    line = one_line_error(proc, "UNAVAILABLE", f"cannot reach the orchestrator at 127.0.0.1:{port}")
    assert "make up" in line and "--addr" in line and "STRATEXEC_ADDR" in line and proc.returncode == 2


@pytest.mark.parametrize("content, expected", [
    ("[]", "holds a JSON list, not an object"),
    ('"nodes"', "holds a JSON str, not an object"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
])
def test_a_strategy_file_that_is_not_an_object_is_a_one_line_error(orchestrator_addr, tmp_path, content, expected):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = cli(orchestrator_addr, "run", str(bad), "--watch")
    line = one_line_error(proc, str(bad), expected)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and line.startswith(f"error: strategy file {bad}")


def test_costs_that_look_like_percentages_are_warned_about(orchestrator_addr, client):
    proc = cli(orchestrator_addr, *run_example_args("--fees", "0.1", "--slippage", "0.0005"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["warning: --fees 0.1 is 10% per trade (a fraction: 0.001 is 0.1%)"]
    list(client.watch(proc.stdout.strip()))  # let it finish before the stack goes away


@pytest.mark.parametrize("symbols", [["BTC,ETH"], ["BTC", "ETH"], ["BTC,", "ETH"]])
def test_symbols_may_be_separated_by_commas_or_spaces(orchestrator_addr, client, symbols):
    proc = cli(orchestrator_addr, "run", str(STRATEGY), "--symbols", *symbols, "--end", "2024-03-31")
    assert proc.returncode == 0, proc.stderr
    execution_id = proc.stdout.strip()
    assert list(client.get(execution_id).params.symbols) == ["BTC-USD", "ETH-USD"]
    list(client.watch(execution_id))  # let it finish before the stack goes away


def test_the_defaults_applied_are_printed(orchestrator_addr):
    proc = cli(orchestrator_addr, "run", str(STRATEGY), "--end", "2024-03-31", "--watch")
    assert proc.returncode == 0, proc.stderr
    defaults = [line for line in proc.stdout.splitlines() if line.startswith("defaults applied:")]
    assert len(defaults) == 1
    for applied in ("--symbols BTC-USD", "--benchmark BTC-USD", "--timeframe 1d", "--start 2024-01-01",
                    "--initial-capital 10000", "--fees 0.001", "--slippage 0.0005", "--fill-at close"):
        assert f" {applied} " in defaults[0] + " ", applied
    assert "--end" not in defaults[0]  # given on the command line


def test_rejections_say_each_thing_once():
    from google.rpc import error_details_pb2, status_pb2

    from services.common import errors

    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="schema.nodes[0]", description="rule 'x' is not understood"),
        error_details_pb2.BadRequest.FieldViolation(field="params.fees", description="must be in [0, 1)")])
    status = status_pb2.Status(code=3, message="rule 'x' is not understood")
    status.details.add().Pack(bad)
    assert errors.describe(status) == "INVALID_ARGUMENT: rule 'x' is not understood (params.fees: must be in [0, 1))"


# --- the live line on a terminal ----------------------------------------------------------------

def run_in_pty(args: list[str], columns: int = 80) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal of ``columns`` columns; (exit code, output, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm"
    proc = subprocess.Popen([str(STRATEXEC), *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + LIMIT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            pytest.fail("the CLI did not finish")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
        os.close(master)
    return proc.returncode, b"".join(chunks).decode(), stderr


def screen(output: str) -> list[str]:
    """What stays on the terminal: each line after its last carriage return, erase codes dropped."""
    return [line.split("\r")[-1].replace("\x1b[K", "") for line in output.replace("\r\n", "\n").split("\n")]


def test_live_status_line_on_a_terminal(orchestrator_addr, client):
    code, output, stderr = run_in_pty(["--addr", orchestrator_addr, *run_example_args("--watch")], columns=80)
    assert code == 0, stderr
    assert "\r\x1b[K" in output  # the line rewrites itself
    assert "#1 " not in output  # not the plain line-per-event format
    live = [seg.replace("\x1b[K", "") for seg in output.replace("\r\n", "\n").split("\r") if seg.startswith("\x1b[K")]
    drawn = [s for s in live if s and s[0] in "|/-\\"]
    assert drawn, output
    assert all(len(s) <= 79 for s in drawn)  # never wraps on an 80-column terminal
    assert any(re.match(r". \w+\s+\d+\.\ds  .*(Strategy Analyzer|Code Generator|Code Executor): ", s) for s in drawn)

    # What remains once it is done: the id, one line per status in order, the metrics; no stale live line.
    lines = [line for line in screen(output) if line.strip()]
    execution_id = re.fullmatch(r"execution ([0-9a-f-]{36})", lines[0]).group(1)
    status_lines = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"\d\d:\d\d:\d\d  (\w+)\s+\d", line))]
    assert [name for _, name in status_lines] == STAGES
    after = [line.strip() for line in lines[status_lines[-1][0] + 1:]]
    assert after[0] == "Interpretation" and after[after.index("Metrics") + 1].startswith("Total return")
    assert not any(line[0] in "|/-\\" for line in lines)
    assert client.get(execution_id).status == execution_pb2.EXECUTION_STATUS_COMPLETED


def test_run_help_gives_every_parameter_with_its_unit_and_default():
    from services.common import backtest_params

    proc = subprocess.run([str(STRATEXEC), "run", "--help"], capture_output=True, text=True, timeout=LIMIT,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    for name, text in backtest_params.descriptions().items():
        flag = {"start_date": "--start", "end_date": "--end"}.get(name, "--" + name.replace("_", "-"))
        assert flag in proc.stdout and text in proc.stdout, (flag, text)
    assert "--fees FEES           a fraction of the order value (0.001 = 0.1%): [0, 1) (default 0.001)" in proc.stdout


def test_warnings_are_printed_with_the_interpretation():
    from stratexec.codegen.v1 import codegen_pb2
    from stratexec_cli import render

    execution = execution_pb2.Execution(insights=insights_pb2.AgentInsights(
        interpretation=[codegen_pb2.RuleInterpretation(node_id="exit", formula="RSI(close, 14) > 70")],
        warnings=["the exit can never fire: RSI(14) never rose above 70 in the data"]))
    assert render.analysis_lines(execution) == [
        "Interpretation", "  exit  RSI(close, 14) > 70",
        "Warnings", "  ! the exit can never fire: RSI(14) never rose above 70 in the data"]
