"""Turn vectorbt portfolios into the result that scripts return or print."""
from __future__ import annotations

import math

import pandas as pd

from stratexec_runtime import channel
from stratexec_runtime.metrics import compute_metrics


def _iso(ts) -> str:
    ts = pd.Timestamp(ts)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


def _value_series(pf) -> pd.Series:
    value = pf.value()
    if isinstance(value, pd.DataFrame):  # several symbols without a group: sum them
        value = value.sum(axis=1)
    return value


def _clean(x: float) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else 0.0


def trades_of(pf, symbols: list[str] | None = None) -> list[dict]:
    """Every trade, from vectorbt's raw trade records; ``symbols`` names them
    when the portfolio's columns are not symbols (a single-symbol portfolio
    built from an unnamed series)."""
    records = pf.trades.records_arr
    index = pf.wrapper.index
    columns = [str(c) for c in pf.wrapper.columns]
    if symbols and not set(columns) <= set(symbols):
        columns = list(symbols) if len(columns) == len(symbols) else [symbols[0]] * len(columns)
    trades = []
    for r in records:
        is_open = int(r["status"]) == 0  # vectorbt TradeStatus: Open=0, Closed=1
        trades.append(
            {
                "symbol": columns[int(r["col"])],
                "direction": "long" if int(r["direction"]) == 0 else "short",
                "entry_time": _iso(index[int(r["entry_idx"])]),
                "exit_time": "" if is_open else _iso(index[int(r["exit_idx"])]),
                "entry_price": _clean(r["entry_price"]),
                "exit_price": _clean(r["exit_price"]),
                "size": _clean(r["size"]),
                "pnl": _clean(r["pnl"]),
                "return_pct": _clean(r["return"]) * 100.0,
                "fees": _clean(r["entry_fees"]) + _clean(r["exit_fees"]),
                "status": "open" if is_open else "closed",
            }
        )
    return trades


def build_result(pf, benchmark_pf, initial_value: float, symbols: list[str] | None = None) -> dict:
    equity = _value_series(pf)
    bench = _value_series(benchmark_pf) if benchmark_pf is not None else None
    trades = trades_of(pf, symbols)
    metrics = compute_metrics(equity, trades, initial_value, bench)
    return {
        "metrics": metrics,
        "equity": [[_iso(t), float(v)] for t, v in equity.items()],
        "benchmark_equity": [[_iso(t), float(v)] for t, v in bench.items()] if bench is not None else [],
        "trades": trades,
    }


def format_metrics(metrics: dict) -> str:
    def pct(v):
        return "n/a" if v is None else f"{v:,.2f}%"

    rows = [
        ("Total return", pct(metrics["total_return"])),
        ("CAGR", pct(metrics["cagr"]) + ("" if metrics["cagr_reliable"] else " (under one year: not reliable)")),
        ("Sharpe ratio", "n/a" if metrics["sharpe_ratio"] is None else f"{metrics['sharpe_ratio']:.3f}"),
        ("Max drawdown", pct(metrics["max_drawdown"])),
        ("Win rate", pct(metrics["win_rate"])),
        ("Trades (closed)", str(metrics["trades"])),
        ("Open trades", str(metrics["open_trades"])),
        ("Benchmark return", pct(metrics["benchmark_return"])),
        ("vs benchmark", "n/a" if metrics["vs_benchmark"] is None else f"{metrics['vs_benchmark']:+,.2f} pp"),
        ("Final value", f"{metrics['final_value']:,.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def report(pf, benchmark_pf, initial_value: float, symbols: list[str] | None = None) -> dict:
    """Send the result to the sandbox when run there; print it otherwise."""
    result = build_result(pf, benchmark_pf, initial_value, symbols)
    if not channel.send(result):
        print(format_metrics(result["metrics"]))
    return result
