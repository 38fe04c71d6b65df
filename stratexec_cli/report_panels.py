"""The report's analysis panels, as quants know them from QuantStats and vectorbt.

Each panel is one Plotly figure in its own ``<div id="chart-...">`` (the
browser test finds each by id): monthly returns as a year x month heatmap,
yearly returns, rolling Sharpe ratio and volatility, the distribution of
per-bar returns, and the table of the five deepest drawdowns. Everything is
computed from the equity curve the service returned, with the pinned
definitions of ``stratexec_runtime.metrics`` (per-bar returns, the first
against the initial capital; drawdown periods as ``underwater_periods``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from stratexec.backtest.v1 import backtest_pb2
from stratexec_runtime.metrics import underwater_periods

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
PANEL_IDS = ("chart-monthly", "chart-yearly", "chart-rolling", "chart-distribution")


def equity_series(result: backtest_pb2.BacktestResult) -> pd.Series:
    return pd.Series([p.value for p in result.equity], index=pd.to_datetime([p.time for p in result.equity]), dtype=float)


def period_returns(equity: pd.Series, initial: float, rule: str) -> pd.Series:
    """Compounded return in percent of each calendar period ("ME" months, "YE" years), the first against ``initial``."""
    ends = equity.resample(rule).last().dropna()
    previous = ends.shift(1)
    previous.iloc[0] = initial
    return (ends / previous - 1.0) * 100.0


def bar_returns(equity: pd.Series, initial: float) -> pd.Series:
    values = pd.concat([pd.Series([initial]), pd.Series(equity.to_numpy())], ignore_index=True)
    return pd.Series((values / values.shift(1) - 1.0).iloc[1:].to_numpy(), index=equity.index)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", height=height, margin=dict(l=60, r=20, t=50, b=40))
    return fig


def monthly_heatmap(equity: pd.Series, initial: float) -> go.Figure:
    monthly = period_returns(equity, initial, "ME")
    table = pd.DataFrame({"year": monthly.index.year, "month": monthly.index.month, "ret": monthly.to_numpy()})
    grid = table.pivot(index="year", columns="month", values="ret").reindex(columns=range(1, 13))
    z = grid.to_numpy()
    text = [["" if math.isnan(v) else f"{v:+.1f}%" for v in row] for row in z]
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=MONTHS, y=[str(y) for y in grid.index], text=text, texttemplate="%{text}",
                               colorscale="RdYlGn", zmid=0, zmin=-bound, zmax=bound, colorbar=dict(title="%"),
                               hovertemplate="%{y} %{x}: %{z:+.2f}%<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    return _layout(fig, "Monthly returns (%)", 120 + 34 * len(grid))


def yearly_bars(equity: pd.Series, initial: float) -> go.Figure:
    yearly = period_returns(equity, initial, "YE")
    fig = go.Figure(go.Bar(x=[str(y) for y in yearly.index.year], y=yearly.to_numpy(),
                           marker_color=["#2ca02c" if v >= 0 else "#d62728" for v in yearly],
                           text=[f"{v:+.1f}%" for v in yearly], textposition="outside",
                           hovertemplate="%{x}: %{y:+.2f}%<extra></extra>"))
    fig.update_xaxes(type="category")
    return _layout(fig, "Yearly returns (%)", 320)


def rolling_panel(equity: pd.Series, initial: float, periods_per_year: int) -> go.Figure:
    """Rolling Sharpe (mean / std * sqrt(P)) and annualised volatility over half a year of bars."""
    window = max(2, periods_per_year // 2)
    r = bar_returns(equity, initial)
    mean, std = r.rolling(window).mean(), r.rolling(window).std(ddof=1)
    sharpe = (mean / std.replace(0.0, np.nan)) * math.sqrt(periods_per_year)
    vol = std * math.sqrt(periods_per_year) * 100.0
    times = [t.strftime("%Y-%m-%d") for t in r.index]
    fig = go.Figure([
        go.Scatter(name=f"rolling Sharpe ({window} bars)", x=times, y=sharpe.to_numpy(), mode="lines",
                   line=dict(color="#1f77b4")),
        go.Scatter(name=f"rolling volatility, % a year ({window} bars)", x=times, y=vol.to_numpy(), mode="lines",
                   line=dict(color="#ff7f0e"), yaxis="y2"),
    ])
    fig.update_layout(yaxis=dict(title="Sharpe"), yaxis2=dict(title="volatility %", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=1.12, x=0))
    return _layout(fig, "Rolling Sharpe ratio and volatility", 340)


def distribution(equity: pd.Series, initial: float) -> go.Figure:
    r = bar_returns(equity, initial) * 100.0
    fig = go.Figure(go.Histogram(x=r.to_numpy(), nbinsx=60, marker_color="#1f77b4", opacity=0.85,
                                 hovertemplate="%{x}%: %{y} bars<extra></extra>"))
    fig.add_vline(x=float(r.mean()), line_dash="dash", line_color="#333",
                  annotation_text=f"mean {r.mean():+.3f}%", annotation_position="top right")
    fig.update_xaxes(title="return per bar, %")
    fig.update_yaxes(title="bars")
    return _layout(fig, "Distribution of per-bar returns", 320)


def top_drawdowns(equity: pd.Series, initial: float, n: int = 5) -> list[list[str]]:
    """Rows: start, valley, recovered (or "not yet"), depth %, days under water."""
    rows = []
    for start, end, depth in sorted(underwater_periods(equity, initial), key=lambda p: p[2])[:n]:
        span = equity.loc[start:end]
        recovered = equity.index[equity.index.get_loc(end) + 1] if end != equity.index[-1] else None
        rows.append([f"{start:%Y-%m-%d}", f"{span.idxmin():%Y-%m-%d}",
                     f"{recovered:%Y-%m-%d}" if recovered is not None else "not yet", f"{depth:.2f}%",
                     str((end - start).days + 1)])
    return rows


def panels(result: backtest_pb2.BacktestResult) -> list[tuple[str, go.Figure]]:
    """(div id, figure) of every panel; none when the curve is too short to say anything."""
    equity = equity_series(result)
    if len(equity) < 3:
        return []
    initial, ppy = result.metrics.initial_value, result.metrics.periods_per_year or 252
    figures = [monthly_heatmap(equity, initial), yearly_bars(equity, initial), rolling_panel(equity, initial, ppy),
               distribution(equity, initial)]
    return list(zip(PANEL_IDS, figures))
