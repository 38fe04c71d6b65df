"""Turn vectorbt portfolios into the result that scripts return or print."""
from __future__ import annotations

import math

import pandas as pd

from stratexec_runtime import channel
from stratexec_runtime.execution import END_OF_DATA
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


def trades_of(pf, symbols: list[str] | None = None, plans: dict | None = None) -> list[dict]:
    """Every trade, from vectorbt's raw trade records; ``symbols`` names them
    when the portfolio's columns are not symbols (a single-symbol portfolio
    built from an unnamed series); ``plans`` (symbol -> execution.Plan) give
    each trade's exit reason."""
    records = pf.trades.records_arr
    index = pf.wrapper.index
    columns = [str(c) for c in pf.wrapper.columns]
    if symbols and not set(columns) <= set(symbols):
        columns = list(symbols) if len(columns) == len(symbols) else [symbols[0]] * len(columns)
    trades = []
    for r in records:
        is_open = int(r["status"]) == 0  # vectorbt TradeStatus: Open=0, Closed=1
        symbol = columns[int(r["col"])]
        reason = END_OF_DATA if is_open else ""
        if plans and not is_open and symbol in plans:
            reason = plans[symbol].reasons.get(int(r["exit_idx"]), "")
        trades.append(
            {
                "symbol": symbol,
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
                "exit_reason": reason,
            }
        )
    return trades


def skipped_signals(pf, plans: dict) -> list[dict]:
    """Entry signals that never became a trade, with the reason: "exit_bar" (the fill
    would fall on an exit's bar), "end_of_data" (no bar left to fill on) or "no_cash"."""
    index = pf.wrapper.index
    return [{"symbol": symbol, "time": _iso(index[bar]), "reason": reason}
            for symbol, plan in plans.items() for bar, reason in sorted(plan.skipped)]


def chart_lines(pf, plans: dict) -> list[dict]:
    """Per symbol: each indicator a rule reads, then the stop and the target level in force on each
    bar of a position (kind indicator, stop, target); points only where the value exists."""
    index = pf.wrapper.index
    out = []
    for symbol, plan in plans.items():
        named = [(name, "indicator", values) for name, values in plan.lines.items()]
        named += [(kind, kind, values) for kind, values in (("stop", plan.stop_level), ("target", plan.target_level))
                  if values is not None]
        for name, kind, values in named:
            points = [[_iso(index[i]), float(v)] for i, v in enumerate(values) if math.isfinite(v)]
            if points:
                out.append({"symbol": symbol, "name": name, "kind": kind, "points": points})
    return out


def build_result(pf, benchmark_pf, initial_value: float, symbols: list[str] | None = None, plans: dict | None = None) -> dict:
    equity = _value_series(pf)
    bench = _value_series(benchmark_pf) if benchmark_pf is not None else None
    trades = trades_of(pf, symbols, plans)
    metrics = compute_metrics(equity, trades, initial_value, bench)
    return {
        "metrics": metrics,
        "equity": [[_iso(t), float(v)] for t, v in equity.items()],
        "benchmark_equity": [[_iso(t), float(v)] for t, v in bench.items()] if bench is not None else [],
        "trades": trades,
        "skipped_signals": skipped_signals(pf, plans) if plans else [],
        "lines": chart_lines(pf, plans) if plans else [],
        # A trade still open at the last bar is valued at that bar's close: its PnL is in the equity,
        # total return and final value, and apart from the closed trades' count and win rate.
        "open_trades_pnl": sum(t["pnl"] for t in trades if t["status"] == "open"),
    }


def format_metrics(metrics: dict, open_pnl: float = 0.0, skipped: int = 0) -> str:
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
        ("Open trades PnL", f"{open_pnl:,.2f} (in the final value; not in the win rate)"),
        ("Skipped signals", str(skipped)),
        ("Benchmark return", pct(metrics["benchmark_return"])),
        ("vs benchmark", "n/a" if metrics["vs_benchmark"] is None else f"{metrics['vs_benchmark']:+,.2f} pp"),
        ("Final value", f"{metrics['final_value']:,.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def report(pf, benchmark_pf, initial_value: float, symbols: list[str] | None = None, plans: dict | None = None) -> dict:
    """Send the result to the sandbox when run there; print it otherwise."""
    result = build_result(pf, benchmark_pf, initial_value, symbols, plans)
    if not channel.send(result):
        print(format_metrics(result["metrics"], result["open_trades_pnl"], len(result["skipped_signals"])))
    return result
