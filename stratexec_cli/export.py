"""`stratexec trades|equity ID --csv` and `stratexec compare ID ID ...`.

CSV columns follow the protos: a trade's columns are the fields of
``stratexec.backtest.v1.Trade`` (enums by name, without their prefix), so a
field added there appears here without a change; the equity file has one
row per bar with the strategy's and the benchmark's value.
"""
from __future__ import annotations

import csv
import io
import pathlib

from google.protobuf.descriptor import FieldDescriptor

from stratexec.backtest.v1 import backtest_pb2
from stratexec_cli import render


def _cell(message, field: FieldDescriptor) -> object:
    value = getattr(message, field.name)
    if field.type != FieldDescriptor.TYPE_ENUM:
        return value
    prefix = field.enum_type.values_by_number[0].name.removesuffix("UNSPECIFIED")  # Buf style: PREFIX_UNSPECIFIED = 0
    return field.enum_type.values_by_number[value].name.removeprefix(prefix).lower()


def trades_csv(result: backtest_pb2.BacktestResult) -> str:
    fields = [f for f in backtest_pb2.Trade.DESCRIPTOR.fields if f.label != FieldDescriptor.LABEL_REPEATED]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields])
    for trade in result.trades:
        writer.writerow([_cell(trade, f) for f in fields])
    return out.getvalue()


def equity_csv(result: backtest_pb2.BacktestResult) -> str:
    benchmark = {point.time: point.value for point in result.benchmark_equity}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "equity", "benchmark"])
    for point in result.equity:
        writer.writerow([point.time, repr(point.value), repr(benchmark[point.time]) if point.time in benchmark else ""])
    return out.getvalue()


def compare_table(labels: list[str], results: list[backtest_pb2.BacktestResult]) -> str:
    """The headline metrics side by side, one column per execution."""
    rows = [render.metrics_rows(result) for result in results]
    names = [name for name, _ in rows[0]]
    return render.table(["METRIC", *labels], [[name, *(dict(r)[name] for r in rows)] for name in names])


def compare_html(labels: list[str], results: list[backtest_pb2.BacktestResult], path: str | pathlib.Path) -> pathlib.Path:
    """One self-contained page: every execution's equity, rebased to 100 at its first bar, on one chart."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for label, result in zip(labels, results):
        if result.equity:
            start = result.equity[0].value or 1.0
            figure.add_trace(go.Scatter(x=[p.time for p in result.equity], y=[p.value / start * 100 for p in result.equity],
                                        mode="lines", name=label))
    figure.update_layout(title="Equity, rebased to 100", template="plotly_white", hovermode="x unified",
                         yaxis_title="value (first bar = 100)")
    target = pathlib.Path(path)
    target.write_text(figure.to_html(include_plotlyjs=True, full_html=True, div_id="stratexec-compare-figure"),
                      encoding="utf-8")
    return target
