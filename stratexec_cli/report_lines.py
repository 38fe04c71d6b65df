"""The result's chart lines in the report: the indicators each rule reads, and the stop and target
levels of every position, drawn where a quant checks them.

Indicators in price units (a moving average, a Bollinger band, a breakout level: their median within
a factor of 2 of the close's) go on the symbol's price chart with the stop and target levels; the
others (RSI, MACD, a volume average) go on panes under it, one per family (the name's first word:
"MACD(12, 26)" and "MACD signal(12, 26, 9)" share one), so that an RSI is not flattened by a MACD.
"""
from __future__ import annotations

import re
import statistics

import plotly.graph_objects as go

from stratexec.backtest.v1 import backtest_pb2

STOP_COLOR = "#d62728"
TARGET_COLOR = "#2ca02c"
PRICE_UNITS = 2.0  # an indicator whose median is within this factor of the close's is in price units


def _median(line: backtest_pb2.ChartLine) -> float:
    return statistics.median(abs(p.value) for p in line.points) if line.points else 0.0


def placed(lines: list[backtest_pb2.ChartLine], close_median: float | None
           ) -> tuple[list[backtest_pb2.ChartLine], list[list[backtest_pb2.ChartLine]]]:
    """(lines on the price chart, panes of other indicators) of one symbol's lines; without prices
    (``close_median`` None) every indicator goes on a pane and the levels are not drawn."""
    on_price, others = [], []
    for line in lines:
        if line.kind != backtest_pb2.CHART_LINE_KIND_INDICATOR:
            if close_median is not None:
                on_price.append(line)
        elif close_median and 1 / PRICE_UNITS <= _median(line) / close_median <= PRICE_UNITS:
            on_price.append(line)
        else:
            others.append(line)
    panes: dict[str, list[backtest_pb2.ChartLine]] = {}
    for line in others:
        panes.setdefault(re.split(r"[ (]", line.name, maxsplit=1)[0], []).append(line)
    return on_price, list(panes.values())


def trace(line: backtest_pb2.ChartLine, bars: list[str]) -> go.Scatter:
    """The line over every bar, with a gap where it has no value (between two positions)."""
    at = {p.time: p.value for p in line.points}
    style = {backtest_pb2.CHART_LINE_KIND_STOP: dict(color=STOP_COLOR, width=1.5, dash="dash"),
             backtest_pb2.CHART_LINE_KIND_TARGET: dict(color=TARGET_COLOR, width=1.5, dash="dash")}.get(line.kind, dict(width=1.3))
    levels = line.kind != backtest_pb2.CHART_LINE_KIND_INDICATOR
    return go.Scatter(name=f"{line.symbol} {line.name}", x=bars, y=[at.get(t) for t in bars], mode="lines",
                      line=dict(**style, shape="hv" if levels else "linear"), connectgaps=False,
                      legendgroup=f"lines-{line.symbol}",
                      hovertemplate=f"%{{x}}<br>{line.name} %{{y:,.4g}}<extra></extra>")
