"""Where the report puts each chart line: price-unit indicators and the levels on the price chart,
other indicators on panes of their own, one per family."""
from __future__ import annotations

from stratexec.backtest.v1 import backtest_pb2
from stratexec_cli import report_lines

IND, STOP = backtest_pb2.CHART_LINE_KIND_INDICATOR, backtest_pb2.CHART_LINE_KIND_STOP


def line(name: str, kind: int, *values: float) -> backtest_pb2.ChartLine:
    return backtest_pb2.ChartLine(symbol="BTC-USD", name=name, kind=kind, points=[
        backtest_pb2.EquityPoint(time=f"2024-01-0{i + 1}", value=v) for i, v in enumerate(values)])


LINES = [line("SMA(close, 20)", IND, 41_000, 42_000), line("RSI(close, 14)", IND, 35, 71),
         line("MACD(12, 26)", IND, -900, 1_200), line("MACD signal(12, 26, 9)", IND, -400, 800),
         line("stop", STOP, 39_000, 39_000)]


def test_price_unit_lines_go_on_the_price_chart_and_the_others_on_a_pane_per_family():
    on_price, panes = report_lines.placed(LINES, close_median=42_500)
    assert [x.name for x in on_price] == ["SMA(close, 20)", "stop"]
    assert [[x.name for x in pane] for pane in panes] == [["RSI(close, 14)"], ["MACD(12, 26)", "MACD signal(12, 26, 9)"]]


def test_without_prices_the_levels_are_left_out_and_every_indicator_gets_a_pane():
    on_price, panes = report_lines.placed(LINES, close_median=None)
    assert on_price == []
    assert [[x.name for x in pane] for pane in panes] == [
        ["SMA(close, 20)"], ["RSI(close, 14)"], ["MACD(12, 26)", "MACD signal(12, 26, 9)"]]


def test_a_line_has_a_gap_on_the_bars_where_it_has_no_value():
    drawn = report_lines.trace(line("stop", STOP, 39_000), ["2024-01-01", "2024-01-02", "2024-01-03"])
    assert list(drawn.y) == [39_000, None, None] and drawn.line.shape == "hv" and drawn.connectgaps is False
