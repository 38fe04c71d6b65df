"""`stratexec report ID --html FILE`: one self-contained, offline HTML report of an execution.

The page holds a header (parameters, metrics, the strategy's interpretation
node by node, warnings, data provenance, trades) and one interactive Plotly
figure with plotly.js embedded (no network needed to open it):

1. equity of the strategy against the benchmark (linear or log scale);
2. drawdown, V / cummax(V) - 1, of both;
3. one price chart per traded symbol with entry and exit markers, a dotted
   line from each entry to its exit, the indicators its rules read and the
   stop and target levels of each position; indicators in other units
   (RSI, MACD, ...) on panes under it (``report_lines``);

then the analysis panels of ``report_panels`` (monthly-returns heatmap,
yearly returns, rolling Sharpe and volatility, the returns distribution, the
five deepest drawdowns) and the trades table.

Prices come from the bundled daily CSV files (``data/ohlcv/<SYMBOL>.csv``,
the files the sandbox reads with the "bundled" provider), sliced to the
backtest's data range and resampled to its timeframe. When the backtest
used another provider, or the file is missing, the trades are drawn on the
equity curve instead and the report says so.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
import os
import pathlib

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli import render, report_lines, report_panels, report_research
from stratexec_runtime.data import read_price_csv, resample, resolve_symbol
from stratexec_runtime.metrics import drawdown_pct

FIGURE_ID = "stratexec-report-figure"
ENTRY_COLOR = "#1f77b4"
WIN_COLOR = "#2ca02c"
LOSS_COLOR = "#d62728"
MARKER_EDGE = "#111"  # a dark edge keeps markers readable on the candles of either colour
# Candles in light tints, so the saturated trade markers stand out on them.
CANDLE_UP = dict(line=dict(color="#80cbc4", width=1), fillcolor="#b2dfdb")
CANDLE_DOWN = dict(line=dict(color="#ef9a9a", width=1), fillcolor="#ffcdd2")


def default_prices_dir() -> pathlib.Path:
    """Where the bundled prices live: $SANDBOX_BUNDLED_DIR, else the project's data/ohlcv."""
    configured = os.environ.get("SANDBOX_BUNDLED_DIR")
    if configured:
        return pathlib.Path(configured)
    return pathlib.Path(__file__).resolve().parents[1] / "data" / "ohlcv"


@dataclasses.dataclass
class Report:
    html: str
    figure: go.Figure
    trades_on: dict[str, str]  # symbol -> "price" or "equity"
    notes: list[str]


def trade_symbol(trade: backtest_pb2.Trade, symbols: list[str]) -> str:
    """The resolved symbol of a trade.

    Results from a single-column backtest may name the column ("0") instead
    of the symbol; such a trade belongs to the symbol at that position.
    """
    if trade.symbol in symbols:
        return trade.symbol
    resolved = resolve_symbol(trade.symbol) if trade.symbol else ""
    if resolved in symbols:
        return resolved
    if trade.symbol.isdigit() and int(trade.symbol) < len(symbols):
        return symbols[int(trade.symbol)]
    if len(symbols) == 1:
        return symbols[0]
    return trade.symbol


def load_prices(source: backtest_pb2.DataSource, timeframe: str, prices_dir: pathlib.Path, given: bool = False):
    """The bars the backtest saw for one symbol, or (None, reason). Bars of another provider than the
    bundled files are read only from a directory the user ``given`` (``--prices``)."""
    if source.provider != "bundled" and not given:
        return None, (f"{source.symbol}: prices came from the {source.provider!r} provider, not the bundled files, "
                      f"so its trades are marked on the equity curve (give --prices DIR with {source.symbol}.csv "
                      "to draw them on its prices)")
    path = prices_dir / f"{source.symbol}.csv"
    try:
        frame = read_price_csv(path)
        frame = frame.loc[source.first_time: source.last_time]
        frame = resample(frame, timeframe or "1d")
    except (OSError, ValueError, KeyError) as exc:
        return None, f"{source.symbol}: cannot read the bundled prices ({exc}), so its trades are marked on the equity curve"
    if frame.empty:
        return None, f"{source.symbol}: no bundled prices in {source.first_time}..{source.last_time}; trades are marked on the equity curve"
    return frame, None


def _times(index) -> list[str]:
    return [t.strftime("%Y-%m-%d") if (t.hour, t.minute, t.second) == (0, 0, 0) else t.isoformat() for t in index]


def _trade_markers(trades: list[backtest_pb2.Trade], symbol: str, y_entry, y_exit) -> list[go.Scatter]:
    """An entry marker per trade, an exit marker per closed trade."""
    entries = go.Scatter(
        name=f"{symbol} entries", mode="markers", legendgroup=f"trades-{symbol}",
        x=[t.entry_time for t in trades], y=[y_entry(t) for t in trades],
        marker=dict(symbol="triangle-up", size=12, color=ENTRY_COLOR, line=dict(width=1.5, color=MARKER_EDGE)),
        text=[f"entry {t.entry_time} @ {t.entry_price:,.2f}<br>size {t.size:,.6g}"
              + ("<br>still open" if t.status == backtest_pb2.TRADE_STATUS_OPEN else "") for t in trades],
        hovertemplate="%{text}<extra></extra>")
    closed = [t for t in trades if t.status != backtest_pb2.TRADE_STATUS_OPEN and t.exit_time]
    links_x, links_y = [], []
    for t in closed:  # a dotted line from each entry to its exit
        links_x += [t.entry_time, t.exit_time, None]
        links_y += [y_entry(t), y_exit(t), None]
    links = go.Scatter(name=f"{symbol} entry to exit", mode="lines", legendgroup=f"trades-{symbol}", x=links_x, y=links_y,
                       line=dict(color="#444", width=1, dash="dot"), hoverinfo="skip")
    exits = go.Scatter(
        name=f"{symbol} exits", mode="markers", legendgroup=f"trades-{symbol}",
        x=[t.exit_time for t in closed], y=[y_exit(t) for t in closed],
        marker=dict(symbol="triangle-down", size=12, line=dict(width=1.5, color=MARKER_EDGE),
                    color=[WIN_COLOR if t.pnl > 0 else LOSS_COLOR for t in closed]),
        text=[f"exit {t.exit_time} @ {t.exit_price:,.2f}<br>PnL {t.pnl:+,.2f} ({t.return_pct:+.2f}%)" for t in closed],
        hovertemplate="%{text}<extra></extra>")
    return [links, entries, exits]


def build_figure(execution: execution_pb2.Execution, result: backtest_pb2.BacktestResult,
                 prices_dir: pathlib.Path | None = None):
    """The figure, where each symbol's trades were drawn, and notes for the header."""
    given = prices_dir is not None
    prices_dir = pathlib.Path(prices_dir) if given else default_prices_dir()
    symbols = list(execution.params.symbols) or [s.symbol for s in result.data]
    sources = {s.symbol: s for s in result.data}
    by_symbol: dict[str, list[backtest_pb2.Trade]] = {}
    for trade in result.trades:
        by_symbol.setdefault(trade_symbol(trade, symbols), []).append(trade)
    notes: list[str] = []
    prices = {}
    for symbol in symbols:
        source = sources.get(symbol)
        if source is None:
            notes.append(f"{symbol}: no data provenance in the results; trades are marked on the equity curve")
            continue
        frame, reason = load_prices(source, execution.params.timeframe, prices_dir, given)
        if frame is None:
            notes.append(reason)
        else:
            prices[symbol] = frame
    price_symbols = [s for s in symbols if s in prices]
    lines_of: dict[str, list[backtest_pb2.ChartLine]] = {}
    for line in result.lines:
        lines_of.setdefault(trade_symbol(line, symbols), []).append(line)
    on_price, panes = {}, {}
    for symbol in symbols:
        close = float(prices[symbol]["close"].median()) if symbol in prices else None
        on_price[symbol], panes[symbol] = report_lines.placed(lines_of.get(symbol, []), close)

    # rows: equity, drawdown, then per symbol its price chart (if its prices are here) and its indicator panes
    symbol_rows = []
    for symbol in symbols:
        if symbol in prices:
            symbol_rows.append((f"{symbol} price and trades", 1.0, symbol, None))
        symbol_rows += [(f"{symbol} " + ", ".join(line.name for line in pane), 0.45, symbol, pane) for pane in panes[symbol]]
    rows = 2 + len(symbol_rows)
    weight = sum(w for _, w, _, _ in symbol_rows) or 1.0
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06 if rows <= 3 else 0.04,
                        row_heights=[0.38, 0.18] + [0.44 * w / weight for _, w, _, _ in symbol_rows],
                        subplot_titles=["Equity: strategy vs benchmark", "Drawdown (V / cummax(V) - 1)"]
                        + [title for title, *_ in symbol_rows])
    price_row = {symbol: 3 + i for i, (_, _, symbol, pane) in enumerate(symbol_rows) if pane is None}

    eq_x = [p.time for p in result.equity]
    capital = result.metrics.initial_value or execution.params.initial_capital  # the drawdown's first peak, as in max_drawdown
    eq_y = [p.value for p in result.equity]
    bench = execution.params.benchmark or "benchmark"
    fig.add_trace(go.Scatter(name="Strategy equity", x=eq_x, y=eq_y, mode="lines", line=dict(color="#1f77b4", width=2),
                             hovertemplate="%{x}<br>equity %{y:,.2f}<extra></extra>"), row=1, col=1)
    if result.benchmark_equity:
        fig.add_trace(go.Scatter(name=f"Benchmark ({bench}, buy and hold)", x=[p.time for p in result.benchmark_equity],
                                 y=[p.value for p in result.benchmark_equity], mode="lines",
                                 line=dict(color="#7f7f7f", width=1.5, dash="dot"),
                                 hovertemplate="%{x}<br>benchmark %{y:,.2f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(name="Strategy drawdown", x=eq_x, y=drawdown_pct(eq_y, capital).tolist(), mode="lines", fill="tozeroy",
                             line=dict(color=LOSS_COLOR, width=1), hovertemplate="%{x}<br>drawdown %{y:.2f}%<extra></extra>"),
                  row=2, col=1)
    if result.benchmark_equity:
        fig.add_trace(go.Scatter(name="Benchmark drawdown", x=[p.time for p in result.benchmark_equity],
                                 y=drawdown_pct([p.value for p in result.benchmark_equity], capital).tolist(), mode="lines",
                                 line=dict(color="#7f7f7f", width=1, dash="dot"),
                                 hovertemplate="%{x}<br>benchmark drawdown %{y:.2f}%<extra></extra>"), row=2, col=1)

    # Candles, then the indicator and level lines, then the markers, so the markers are drawn on top.
    for symbol in price_symbols:
        frame = prices[symbol]
        fig.add_trace(go.Candlestick(
            name=f"{symbol} price", x=_times(frame.index), open=frame["open"].tolist(), high=frame["high"].tolist(),
            low=frame["low"].tolist(), close=frame["close"].tolist(), showlegend=True,
            increasing=CANDLE_UP, decreasing=CANDLE_DOWN), row=price_row[symbol], col=1)
        for line in on_price[symbol]:
            fig.add_trace(report_lines.trace(line, eq_x), row=price_row[symbol], col=1)
    for i, (_, _, symbol, pane) in enumerate(symbol_rows):
        for line in pane or []:
            fig.add_trace(report_lines.trace(line, eq_x), row=3 + i, col=1)
    equity_at = dict(zip(eq_x, eq_y))
    trades_on: dict[str, str] = {}
    for symbol, trades in by_symbol.items():
        if symbol in prices:
            row = price_row[symbol]
            trades_on[symbol] = "price"
            markers = _trade_markers(trades, symbol, lambda t: t.entry_price, lambda t: t.exit_price)
        else:
            row = 1
            trades_on[symbol] = "equity"
            if symbol not in symbols:
                notes.append(f"trades of {symbol!r} match no traded symbol; they are marked on the equity curve")
            markers = _trade_markers(trades, symbol, lambda t: equity_at.get(t.entry_time),
                                     lambda t: equity_at.get(t.exit_time))
        for trace in markers:
            fig.add_trace(trace, row=row, col=1)

    fig.update_xaxes(rangeslider_visible=False, showspikes=True, spikemode="across", spikethickness=1)
    fig.update_yaxes(title_text="value", row=1, col=1)
    fig.update_yaxes(title_text="%", row=2, col=1)
    for row in price_row.values():
        fig.update_yaxes(title_text="price", row=row, col=1)
    fig.update_layout(updatemenus=[dict(  # the equity chart's scale
        type="buttons", direction="right", x=1, xanchor="right", y=1.0, yanchor="bottom", showactive=True,
        buttons=[dict(label="linear", method="relayout", args=[{"yaxis.type": "linear"}]),
                 dict(label="log", method="relayout", args=[{"yaxis.type": "log"}])])])
    fig.update_layout(height=380 + 220 * rows, hovermode="x", template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      margin=dict(l=60, r=20, t=80, b=40))
    return fig, trades_on, notes


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.summary { color: #555; margin-top: 0; } .grid { display: flex; flex-wrap: wrap; gap: 32px; }
table { border-collapse: collapse; font-size: 0.9em; } th, td { padding: 4px 10px; text-align: left;
       border-bottom: 1px solid #e4e4e4; vertical-align: top; } th { background: #f6f6f6; }
td.num, table.metrics td:nth-child(2) { font-variant-numeric: tabular-nums; }
.note { background: #fff7e0; border-left: 4px solid #f0b400; padding: 6px 10px; margin: 6px 0; }
.muted { color: #777; font-size: 0.85em; } code { font-size: 0.95em; }
details summary { cursor: pointer; }
"""


def render_html(execution: execution_pb2.Execution, reply: execution_pb2.GetBacktestResultsResponse,
                prices_dir: pathlib.Path | None = None,
                optimization: execution_pb2.GetOptimizationResultsResponse | None = None) -> Report:
    result = reply.result
    fig, trades_on, notes = build_figure(execution, result, prices_dir)
    insights = execution.insights
    p = execution.params
    esc = html.escape

    param_rows = [
        ["Symbols", ", ".join(p.symbols)], ["Timeframe", p.timeframe], ["Dates", f"{p.start_date} .. {p.end_date}"],
        ["Initial capital", f"{p.initial_capital:,.2f}"], ["Benchmark", p.benchmark],
        ["Fees", f"{p.fees:g}"], ["Slippage", f"{p.slippage:g}"],
        ["Position sizing", p.position_sizing], ["Exposure", f"{p.exposure:g}"],
        *([["Risk per trade", f"{p.risk_per_trade:g}"]] if p.position_sizing == "risk" else []),
        ["Direction", p.direction or "long"], ["Prices", p.prices or "raw"],
    ]
    interp_rows = [[r.node_id, r.rule, r.formula, r.interpretation] for r in insights.interpretation]
    warnings = list(insights.warnings)
    symbols = list(p.symbols) or [s.symbol for s in result.data]
    reason = "exit_reason" in backtest_pb2.Trade.DESCRIPTOR.fields_by_name  # which node closed the trade
    trade_rows = [[trade_symbol(t, symbols), t.entry_time, f"{t.entry_price:,.2f}", t.exit_time or "(open)",
                   f"{t.exit_price:,.2f}", f"{t.size:,.6g}", f"{t.pnl:+,.2f}", f"{t.return_pct:+.2f}%",
                   f"{t.fees:,.2f}", "open" if t.status == backtest_pb2.TRADE_STATUS_OPEN else "closed",
                   *([str(getattr(t, "exit_reason"))] if reason else [])] for t in result.trades]
    placement = [f"{s}: trades marked on the {where} chart" for s, where in sorted(trades_on.items())]
    created = execution.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC") if execution.HasField("created_at") else ""
    took = ""
    if execution.HasField("completed_at") and execution.HasField("created_at"):
        took = f", took {(execution.completed_at.ToDatetime() - execution.created_at.ToDatetime()).total_seconds():.1f}s"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>stratexec report {esc(execution.name or execution.id)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{'Optimization' if optimization else 'Backtest'} report{': ' + esc(execution.name) if execution.name else ''}</h1>",
        f'<p class="summary">{esc(insights.summary)}</p>',
        f'<p class="muted">Execution <code>{esc(execution.id)}</code> · {esc(render.status_name(execution.status))} · '
        f"created {esc(created)}{esc(took)} · strategy <code>{esc(execution.strategy_id)}</code> · backtest run "
        f"<code>{esc(reply.backtest_run_id)}</code>"
        + (f" · planner {esc(insights.llm)}" if insights.llm else "") + "</p>",
        '<div class="grid"><div><h2>Metrics</h2>',
        _table(["Metric", "Value"], [list(r) for r in render.metrics_rows(result)], "metrics"),
        "</div><div><h2>Parameters</h2>", _table(["Parameter", "Value"], param_rows), "</div></div>",
        "<h2>Interpretation</h2>",
        _table(["Node", "Rule", "Formula", "Meaning"], interp_rows, "interpretation") if interp_rows
        else '<p class="muted">The execution recorded no interpretation.</p>',
    ]
    if optimization is not None:
        parts.extend(report_research.section(optimization, result, _table))
    if warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    parts.append("<h2>Data</h2><ul>" + "".join(f"<li>{esc(render.data_line(s))}</li>" for s in result.data) + "</ul>")
    parts.append("<h2>Charts</h2>")
    parts.extend(f'<p class="note">{esc(n)}</p>' for n in notes)
    if placement:
        parts.append(f'<p class="muted">{esc("; ".join(placement))}. Entries ▲, exits ▼ (green: profit, red: loss); '
                     "open trades have no exit marker.</p>")
    # plotly.js is embedded once, in the first figure of the page (the research section's, when there is one)
    parts.append(fig.to_html(full_html=False, include_plotlyjs=optimization is None, div_id=FIGURE_ID,
                             config={"responsive": True, "displaylogo": False}))
    panel_figures = report_panels.panels(result)
    if panel_figures:
        parts.append("<h2>Returns</h2>")
        parts.extend(figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                    config={"responsive": True, "displaylogo": False}) for div_id, figure in panel_figures)
        parts.append("<h2>Five deepest drawdowns</h2>")
        parts.append(_table(["Start", "Valley", "Recovered", "Depth", "Days under water"],
                            report_panels.top_drawdowns(report_panels.equity_series(result), result.metrics.initial_value),
                            "drawdowns"))
    parts.append(f"<details><summary><h2 style=\"display:inline\">Trades ({len(result.trades)})</h2></summary>")
    parts.append(_table(["Symbol", "Entry", "Entry price", "Exit", "Exit price", "Size", "PnL", "Return", "Fees",
                         "Status", *(["Exit reason"] if reason else [])], trade_rows, "trades"))
    parts.append("</details>")
    parts.append(f'<p class="muted">Generated by stratexec at {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC. '
                 "Self-contained: plotly.js is embedded, no network needed.</p></body></html>")
    return Report(html="\n".join(parts), figure=fig, trades_on=trades_on, notes=notes)


def write_report(path: str | os.PathLike, report: Report) -> pathlib.Path:
    """Write atomically (a temporary file renamed into place)."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(report.html, encoding="utf-8")
    os.replace(tmp, path)
    return path
