"""Chart lines on the result channel are checked like the equity curve before they reach a client."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from services.sandbox.result import ResultRejected, to_proto, verify
from stratexec.backtest.v1 import backtest_pb2
from stratexec_runtime.metrics import compute_metrics

EQUITY = [["2024-01-01", 10_000.0], ["2024-01-02", 10_100.0], ["2024-01-03", 10_050.0]]


def payload(lines) -> bytes:
    equity = pd.Series([v for _, v in EQUITY], index=pd.to_datetime([t for t, _ in EQUITY]))
    return json.dumps({"metrics": compute_metrics(equity, [], 10_000.0), "equity": EQUITY, "trades": [],
                       "lines": lines}).encode()


def test_lines_reach_the_proto_with_their_kind_and_points():
    lines = [{"symbol": "BTC-USD", "name": "SMA(close, 20)", "kind": "indicator", "points": EQUITY},
             {"symbol": "BTC-USD", "name": "stop", "kind": "stop", "points": [["2024-01-02", 9_500.0]]}]
    result = to_proto(verify(payload(lines), 10_000.0), [])
    assert [(line.name, line.kind, len(line.points)) for line in result.lines] == [
        ("SMA(close, 20)", backtest_pb2.CHART_LINE_KIND_INDICATOR, 3), ("stop", backtest_pb2.CHART_LINE_KIND_STOP, 1)]
    assert result.lines[1].points[0].value == 9_500.0


@pytest.mark.parametrize("line, words", [
    ({"symbol": "BTC-USD", "name": "x", "kind": "banner", "points": []}, "a kind in indicator, stop, target"),
    ({"symbol": "BTC-USD", "name": "x", "kind": "stop", "points": [["2024-01-02", 1.0], ["2024-01-01", 1.0]]},
     "lines[0].points times must be strictly increasing"),
    ({"symbol": "BTC-USD", "name": "x", "kind": "stop", "points": [["2024-01-02", "high"]]}, "lines[0].points[0]"),
    ({"symbol": "BTC-USD", "name": "x" * 201, "kind": "stop", "points": []}, "lines[0] must have"),
])
def test_a_malformed_line_rejects_the_result(line, words):
    with pytest.raises(ResultRejected, match=words.replace("[", r"\[").replace("]", r"\]")):
        verify(payload([line]), 10_000.0)
