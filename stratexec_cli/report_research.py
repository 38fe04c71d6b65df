"""The report's research section, for an OptimizeStrategy execution: the verdicts (DSR, PSR, PBO), the
heatmap of the objective over two parameters, in-sample against stitched out-of-sample equity, the
walk-forward table and the best combinations."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.optimize import combination_words

HEATMAP_ID, WALK_FORWARD_ID = "stratexec-heatmap", "stratexec-walk-forward"
CONFIG = {"responsive": True, "displaylogo": False}


def heatmap_figure(h) -> go.Figure:
    cells = np.asarray(h.cells, dtype=float).reshape(len(h.y_values), len(h.x_values))
    fig = go.Figure(go.Heatmap(z=cells, x=[f"{v:g}" for v in h.x_values], y=[f"{v:g}" for v in h.y_values],
                               colorscale="RdYlGn", colorbar={"title": h.objective},
                               hovertemplate=f"{h.x}=%{{x}}<br>{h.y}=%{{y}}<br>{h.objective}=%{{z:.3f}}<extra></extra>"))
    fig.update_layout(title=f"Best {h.objective} over the other parameters", xaxis_title=h.x, yaxis_title=h.y,
                      height=480, margin={"t": 50})
    return fig


def walk_forward_figure(summary, result: backtest_pb2.BacktestResult) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p.time for p in result.equity], y=[p.value for p in result.equity],
                             name="in sample: best combination, whole window", line={"color": "#1f77b4"}))
    wf = summary.walk_forward
    fig.add_trace(go.Scatter(x=[p.time for p in wf.out_of_sample_equity], y=[p.value for p in wf.out_of_sample_equity],
                             name="out of sample: each segment's choice, stitched", mode="lines+markers",
                             marker={"size": 3}, line={"color": "#d62728"}))
    for s in wf.segments:
        fig.add_vrect(x0=s.out_of_sample_start, x1=s.out_of_sample_end, fillcolor="#d62728", opacity=0.07, line_width=0)
    fig.update_layout(title="In-sample against out-of-sample equity (shaded: out-of-sample parts)", height=420,
                      margin={"t": 50}, legend={"orientation": "h", "y": -0.15})
    return fig


def section(reply: execution_pb2.GetOptimizationResultsResponse, result: backtest_pb2.BacktestResult, table) -> list[str]:
    """HTML parts (``table`` is the report's table helper); the first figure embeds plotly.js for the page."""
    esc = html.escape
    s, st = reply.summary, reply.summary.statistics
    parts = ["<h2>Optimization</h2>",
             f'<p class="summary">{s.combinations:,} combinations in {s.chunks} sandbox job(s), chosen by '
             f"{esc(s.objective)}; best: <b>{esc(combination_words(s.best))}</b>. The backtest below is that "
             "combination run alone.</p>",
             table(["Statistic", "Value"], [
                 ["Deflated Sharpe Ratio", esc(st.dsr_verdict)],
                 ["Trials in the ledger (this family, this data)", f"{st.trials:,} ({st.trials_in_this_execution:,} in this execution)"],
                 ["Probabilistic Sharpe Ratio (vs 0)", f"{st.psr:.3f}"],
                 ["Sharpe ratio / deflated benchmark (annualised)", f"{st.sharpe_ratio:.3f} / {st.deflated_benchmark:.3f}"],
                 ["Skewness / kurtosis (raw) of returns", f"{st.skewness:.3f} / {st.kurtosis:.3f} over {st.observations} bars"],
                 ["Probability of Backtest Overfitting", esc(st.pbo_verdict)],
             ], "statistics")]
    embedded = []

    def figure_html(fig: go.Figure, div_id: str) -> str:
        html_text = fig.to_html(full_html=False, include_plotlyjs=not embedded, div_id=div_id, config=CONFIG)
        embedded.append(div_id)
        return html_text

    if reply.HasField("heatmap"):
        parts.append(figure_html(heatmap_figure(reply.heatmap), HEATMAP_ID))
    if s.HasField("walk_forward"):
        wf = s.walk_forward
        parts.append(f"<h3>Walk-forward ({len(wf.segments)} segments, {wf.in_sample_fraction:.0%} in sample)</h3>")
        parts.append(figure_html(walk_forward_figure(s, result), WALK_FORWARD_ID))
        shape = [len(p.values) for p in s.parameters]

        def chosen(index: int) -> str:
            if index < 0:
                return "(none met the constraints)"
            position = np.unravel_index(index, shape)
            return ", ".join(f"{p.name}={p.values[i]:g}" for p, i in zip(s.parameters, position))

        def sharpe(m) -> str:
            return f"{m.sharpe_ratio:.3f}" if m.HasField("sharpe_ratio") else "-"

        rows = [[f"{g.in_sample_start} .. {g.in_sample_end}", f"{g.out_of_sample_start} .. {g.out_of_sample_end}",
                 esc(chosen(g.chosen_combination)), sharpe(g.in_sample), f"{g.in_sample.total_return:.2f}%",
                 sharpe(g.out_of_sample), f"{g.out_of_sample.total_return:.2f}%"] for g in wf.segments]
        rows.append(["all (stitched)", "", "", sharpe(wf.in_sample), f"{wf.in_sample.total_return:.2f}%",
                     sharpe(wf.out_of_sample), f"{wf.out_of_sample.total_return:.2f}%"])
        parts.append(table(["In sample", "Out of sample", "Chosen in sample", "IS Sharpe", "IS return", "OOS Sharpe",
                            "OOS return"], rows, "walk-forward"))
    rows = [[str(c.rank or "-"), esc(combination_words(c)), f"{c.objective:.3f}" if c.HasField("objective") else "-",
             f"{c.total_return:.2f}%", f"{c.max_drawdown:.2f}%", str(c.trades)] for c in reply.combinations]
    parts.append(f"<h3>Best {len(rows)} combinations</h3>")
    parts.append(table(["Rank", "Parameters", s.objective, "Return", "Max drawdown", "Trades"], rows, "combinations"))
    if not embedded:  # no figure here: the page's main figure must embed plotly.js
        parts.append(go.Figure().to_html(full_html=False, include_plotlyjs=True, div_id="stratexec-plotlyjs"))
    return parts
