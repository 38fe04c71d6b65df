"""Your own daily bars: uploaded through the API, checked bar by bar, traded by name next to the
bundled symbols, and kept to their owner. The oracle for the numbers is the same bars traded
from the bundled file: an uploaded copy of SPY gives the bundled SPY's trades and metrics."""
from __future__ import annotations

import io
import json

import grpc
import pandas as pd
import pytest
from google.rpc import error_details_pb2

from services.common.config import project_root
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client, ClientError
from tests.e2e.conftest import EXAMPLE
from tests.e2e.test_cli import cli

USER = "dataset-owner"
SPY = pd.read_csv(project_root() / "data" / "ohlcv" / "SPY.csv").query("'2015-01-01' <= date <= '2024-12-31'")


def yahoo_csv(frame: pd.DataFrame) -> bytes:
    """The file as Yahoo Finance exports it: capitalised headers, "Adj Close"."""
    names = {"date": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close", "adj_close": "Adj Close",
             "volume": "Volume"}
    return frame.rename(columns=names).to_csv(index=False).encode()


def violations(failure) -> list[tuple[str, str]]:
    bad = error_details_pb2.BadRequest()
    next(d for d in failure.value.status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    return [(v.field, v.description) for v in bad.field_violations]


def finished(client: Client, execution) -> backtest_pb2.BacktestResult:
    events = list(client.watch(execution.id))
    assert events[-1].status == execution_pb2.EXECUTION_STATUS_COMPLETED, events[-1]
    return client.results(execution.id).result


def test_an_uploaded_copy_of_spy_trades_as_the_bundled_spy_does(orchestrator_addr, tmp_path):
    (tmp_path / "myspy.csv").write_bytes(yahoo_csv(SPY))
    (tmp_path / "strategy.json").write_text(json.dumps(EXAMPLE))
    upload = cli(orchestrator_addr, "--user", USER, "data", "upload", str(tmp_path / "myspy.csv"), "--replace")
    assert upload.returncode == 0, upload.stderr
    assert upload.stdout.startswith(f"@MYSPY  {len(SPY)} bars  2015-01-02..2024-12-31  sha256 ")
    listed = cli(orchestrator_addr, "--user", USER, "data", "list").stdout.splitlines()
    assert listed[0].split() == ["SYMBOL", "BARS", "FIRST", "LAST", "ADJ_CLOSE", "SHA256"]
    assert listed[2].split()[:5] == ["@MYSPY", str(len(SPY)), "2015-01-02", "2024-12-31", "yes"]

    run = cli(orchestrator_addr, "--user", USER, "run", str(tmp_path / "strategy.json"), "--data", str(tmp_path / "myspy.csv"),
              "--start", "2020-01-01", "--end", "2024-12-31")
    assert run.returncode == 0, run.stderr
    execution_id = run.stdout.strip().splitlines()[-1]
    client = Client(orchestrator_addr, user=USER)
    mine = finished(client, client.get(execution_id))
    bundled = finished(client, client.execute(EXAMPLE, backtest_pb2.BacktestParams(
        symbols=["SPY"], start_date="2020-01-01", end_date="2024-12-31")))

    assert [(d.symbol, d.provider, d.bars) for d in mine.data] == [("@MYSPY", "uploaded", 1258)]
    assert [(d.symbol, d.provider, d.bars) for d in bundled.data] == [("SPY", "bundled", 1258)]
    assert mine.metrics.trades == bundled.metrics.trades > 5
    assert [(t.entry_time, t.exit_time, t.exit_reason) for t in mine.trades] == [
        (t.entry_time, t.exit_time, t.exit_reason) for t in bundled.trades]
    assert mine.metrics.total_return == pytest.approx(bundled.metrics.total_return, abs=1e-6)
    assert mine.metrics.benchmark_return == pytest.approx(bundled.metrics.benchmark_return, abs=1e-6)

    # The report finds it under Data; with --prices it draws the trades on its own bars.
    alone = json.loads(cli(orchestrator_addr, "--user", USER, "--json", "report", execution_id, "--html",
                           str(tmp_path / "a.html")).stdout)
    assert alone["trades_on"] == {"@MYSPY": "equity"} and "give --prices DIR with @MYSPY.csv" in alone["notes"][0]
    assert "@MYSPY 2020-01-02..2024-12-31, 1258 bars, uploaded" in (tmp_path / "a.html").read_text(encoding="utf-8")
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "@MYSPY.csv").write_bytes(yahoo_csv(SPY))
    drawn = json.loads(cli(orchestrator_addr, "--user", USER, "--json", "report", execution_id, "--html",
                           str(tmp_path / "b.html"), "--prices", str(tmp_path / "prices")).stdout)
    assert drawn["trades_on"] == {"@MYSPY": "price"} and drawn["notes"] == []


def test_a_parquet_file_uploads_like_its_csv(orchestrator_addr):
    client = Client(orchestrator_addr, user=USER)
    buffer = io.BytesIO()
    SPY.drop(columns=["adj_close"]).to_parquet(buffer, index=False)
    dataset = client.upload_dataset(buffer.getvalue(), "spy-parquet", replace=True)
    assert (dataset.symbol, dataset.bars, dataset.has_adj_close) == ("@SPY-PARQUET", len(SPY), False)


def broken(change) -> bytes:
    frame = SPY.head(30).copy().reset_index(drop=True)
    return change(frame) if callable(change) else change


def set_cell(row: int, column: str, value):
    def change(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame.to_csv(index=False).encode()
    return change


# case -> (file, the field violation: line numbers count the header as line 1)
BAD_FILES = {
    "high below low": (set_cell(10, "high", 1.0), ("line 12.high", "high 1 is below low")),
    "a negative price": (set_cell(3, "close", -5), ("line 5.close", "close -5 is not a positive price")),
    "not a number": (set_cell(7, "volume", "lots"), ("line 9.volume", "'lots' is not a number")),
    "not a date": (set_cell(0, "date", "yesterday"), ("line 2.date", "'yesterday' is not a date")),
    "a time of day": (set_cell(4, "date", "2015-01-08 14:30"), ("line 6.date", "has a time of day: daily bars only")),
    "unsorted dates": (lambda f: f.iloc[[0, 2, 1, *range(3, 30)]].to_csv(index=False).encode(),
                       ("line 4.date", "is not after the bar before it")),
    "a repeated date": (set_cell(5, "date", SPY.iloc[4]["date"]), ("line 7.date", "dates must be sorted and unique")),
    "a gap of weeks": (lambda f: f.drop(index=range(10, 22)).to_csv(index=False).encode(),
                       ("line 12.date", "a gap longer than any market closure")),
    "a missing column": (lambda f: f.drop(columns=["volume"]).to_csv(index=False).encode(), ("file.columns", "missing volume")),
    "an empty file": (b"", ("file", "the file is empty")),
    "not a table": (b"\x00\x01binary\x02" * 10, ("file.columns", "missing open")),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_file_is_invalid_argument_naming_the_line_and_column_and_nothing_is_stored(orchestrator_addr, case):
    change, (field, words) = BAD_FILES[case]
    client = Client(orchestrator_addr, user="bad-file-uploader")
    with pytest.raises(ClientError) as failure:
        client.upload_dataset(broken(change), "broken")
    assert failure.value.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], failure.value.status.message
    first = violations(failure)[0]
    assert first[0] == field and words in first[1], violations(failure)
    assert list(client.list_datasets()) == []


def test_datasets_belong_to_their_owner(orchestrator_addr):
    owner, other = Client(orchestrator_addr, user="owner-a"), Client(orchestrator_addr, user="owner-b")
    owner.upload_dataset(yahoo_csv(SPY), "private", replace=True)
    with pytest.raises(ClientError) as taken:
        owner.upload_dataset(yahoo_csv(SPY), "private")
    assert taken.value.status.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert [d.symbol for d in other.list_datasets()] == []
    params = backtest_pb2.BacktestParams(symbols=["@private"], start_date="2020-01-01", end_date="2020-12-31")
    with pytest.raises(ClientError) as hidden:
        other.execute(EXAMPLE, params)
    assert hidden.value.status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert violations(hidden)[0][0] == "params.symbols[0]"
    with pytest.raises(ClientError) as gone:
        other.delete_dataset("private")
    assert gone.value.status.code == grpc.StatusCode.NOT_FOUND.value[0]
    owner.delete_dataset("@private")
    assert [d.symbol for d in owner.list_datasets()] == []


def test_a_file_over_the_size_limit_is_refused_and_nothing_is_stored(orchestrator_addr):
    from services.orchestrator.datasets import MAX_UPLOAD_BYTES

    client = Client(orchestrator_addr, user="large-file-uploader")
    with pytest.raises(ClientError) as failure:
        client.upload_dataset(b"x" * (MAX_UPLOAD_BYTES + 1), "huge")
    assert failure.value.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert violations(failure) == [("chunk", "the file is too large")] and "over 16 MiB" in failure.value.status.message
    assert list(client.list_datasets()) == []
