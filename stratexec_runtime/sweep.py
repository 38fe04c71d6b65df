"""The sweep runtime: every combination of a grid as one column of vectorbt
portfolios, simulated in chunks of bounded memory, with the metrics of
every column computed at once (the pinned definitions of metrics.py, on
columns), the per-block return sums that CSCV needs, and walk-forward
segments. Pure numpy, pandas and vectorbt; no service code.

Column c of the grid is signal column c // K with stop combination c % K
(K = the number of stop/target combinations): the combination index runs
over the product of the grid's value lists, the last parameter fastest.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stratexec_runtime import channel
from stratexec_runtime.metrics import compute_metrics, periods_per_year
from stratexec_runtime.report import _iso, trades_of

BLOCKS = 16
OBJECTIVES = ("sharpe_ratio", "total_return", "cagr", "calmar", "sortino")


def _stop_grid(sweep: dict) -> tuple[int, dict[str, np.ndarray]]:
    """(K, {vectorbt argument: fraction per stop combination})."""
    grid = sweep["grid"]
    stop_names = [n for n in grid if n not in sweep["signal_parameters"]]
    shape = [len(grid[n]) for n in stop_names]
    k = int(np.prod(shape)) if shape else 1
    index = np.indices(shape).reshape(len(shape), -1) if shape else np.zeros((0, 1), dtype=int)
    by_name = {n: np.asarray(grid[n], dtype=float)[index[i]] for i, n in enumerate(stop_names)}
    return k, {arg: by_name[name] / 100.0 for arg, name in sweep["stop_arguments"].items()}


def column_metrics(values: np.ndarray, index: pd.DatetimeIndex, initial: float, closed: np.ndarray,
                   wins: np.ndarray, open_: np.ndarray) -> dict[str, np.ndarray]:
    """metrics.compute_metrics on each column of an equity matrix (bars x columns)."""
    v = np.ascontiguousarray(np.vstack([np.full((1, values.shape[1]), initial), values]).T)  # columns x (1 + bars)
    r = v[:, 1:] / v[:, :-1] - 1.0
    ppy = periods_per_year(index)
    days = int((index[-1] - index[0]).days) + 1
    mean = np.mean(r, axis=1)
    std = np.std(r, axis=1, ddof=1) if r.shape[1] > 1 else np.zeros(len(r))
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0, mean / std * math.sqrt(ppy), np.nan)
        downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2, axis=1))
        sortino = np.where(downside > 0, mean / downside * math.sqrt(ppy), np.nan)
        max_dd = np.min(v / np.maximum.accumulate(v, axis=1) - 1.0, axis=1) * 100.0
        growth = v[:, -1] / initial
        cagr = np.where(growth > 0, (np.abs(growth) ** (365.25 / days) - 1.0) * 100.0, -100.0)
        calmar = np.where(max_dd < 0, cagr / np.abs(max_dd), np.nan)
        win_rate = np.where(closed > 0, wins / np.maximum(closed, 1) * 100.0, np.nan)
    return {
        "total_return": (v[:, -1] / initial - 1.0) * 100.0, "cagr": cagr, "sharpe_ratio": sharpe,
        "max_drawdown": max_dd, "win_rate": win_rate, "trades": closed.astype(np.int64),
        "open_trades": open_.astype(np.int64), "calmar": calmar, "sortino": sortino,
    }, r


def _blocks(r: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    edges = np.linspace(0, r.shape[1], BLOCKS + 1).astype(int)
    sums = np.stack([r[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])])
    squares = np.stack([(r[:, a:b] ** 2).sum(axis=1) for a, b in zip(edges[:-1], edges[1:])])
    return [int(b - a) for a, b in zip(edges[:-1], edges[1:])], sums, squares


def _trade_counts(pf, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rec = pf.trades.records_arr
    closed = rec["status"] == 1  # vectorbt TradeStatus: Open=0, Closed=1
    col = rec["col"]
    return (np.bincount(col[closed], minlength=n), np.bincount(col[closed & (rec["pnl"] > 0)], minlength=n),
            np.bincount(col[~closed], minlength=n))


def run_columns(bars: pd.DataFrame, entries: np.ndarray, exits: np.ndarray, simulate, sweep: dict,
                initial: float, columns: np.ndarray, blocks: bool = False) -> dict:
    """Metrics of the given combination indices on these bars, in chunks."""
    k, stops = _stop_grid(sweep)
    chunk = int(sweep.get("chunk_columns", 2000))
    parts: list[dict] = []
    block_parts: list[tuple] = []
    for start in range(0, len(columns), chunk):
        cols = columns[start:start + chunk]
        sig, stop = cols // k, cols % k
        pf = simulate(bars, entries[:, sig], exits[:, sig], {arg: values[stop] for arg, values in stops.items()})
        closed, wins, open_ = _trade_counts(pf, len(cols))
        metrics, r = column_metrics(pf.value().to_numpy(), bars.index, initial, closed, wins, open_)
        parts.append(metrics)
        if blocks:
            block_parts.append(_blocks(r))
        del pf, r
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    if blocks:
        out["_blocks"] = (block_parts[0][0], np.concatenate([b[1] for b in block_parts], axis=1),
                          np.concatenate([b[2] for b in block_parts], axis=1))
    return out


def best_index(metrics: dict, objective: str, min_trades: int = 0, max_drawdown: float | None = None) -> int:
    """The combination with the highest objective among those meeting the constraints; -1 when none does."""
    score = np.array(metrics[objective], dtype=float)
    ok = np.isfinite(score) & (np.asarray(metrics["trades"]) >= min_trades)
    if max_drawdown is not None:
        ok &= np.asarray(metrics["max_drawdown"]) >= -abs(max_drawdown)
    if not ok.any():
        return -1
    return int(np.argmax(np.where(ok, score, -np.inf)))


def _single(bars, entries, exits, simulate, sweep, initial, column: int, symbol: str) -> dict:
    """One combination as a standalone run: metrics.compute_metrics on its equity and trades."""
    k, stops = _stop_grid(sweep)
    sig, stop = np.array([column // k]), np.array([column % k])
    pf = simulate(bars, entries[:, sig], exits[:, sig], {arg: values[stop] for arg, values in stops.items()})
    equity = pf.value().iloc[:, 0]
    trades = trades_of(pf, [symbol])
    return {"metrics": compute_metrics(equity, trades, initial), "equity": [[_iso(t), float(x)] for t, x in equity.items()]}


def segments(index: pd.DatetimeIndex, count: int, in_sample_fraction: float) -> list[tuple[int, int, int]]:
    """(in-sample start, out-of-sample start, end) bar offsets of ``count`` disjoint segments covering the bars."""
    edges = np.linspace(0, len(index), count + 1).astype(int)
    return [(int(a), int(a + round((b - a) * in_sample_fraction)), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _finite(values) -> list:
    return [float(x) if math.isfinite(float(x)) else None for x in values]


def sweep(bars: pd.DataFrame, entries: np.ndarray, exits: np.ndarray, simulate, params: dict, config: dict) -> dict:
    """Run the grid on bars from start_date; send the result to the sandbox (or print a summary)."""
    first = int(bars.index.searchsorted(pd.Timestamp(params["start_date"])))
    bars, entries, exits = bars.iloc[first:], entries[first:], exits[first:]
    initial = float(params["initial_capital"])
    k, _ = _stop_grid(config)
    total = int(config["signal_columns"]) * k
    every = run_columns(bars, entries, exits, simulate, config, initial, np.arange(total), blocks=True)
    block_bars, sums, squares = every.pop("_blocks")
    result = {
        "combinations": total, "bars": len(bars), "periods_per_year": periods_per_year(bars.index),
        "metrics": {key: _finite(v) if v.dtype.kind == "f" else [int(x) for x in v] for key, v in every.items()},
        "blocks": {"blocks": BLOCKS, "bars": block_bars, "sum": sums.ravel().tolist(), "sum_squares": squares.ravel().tolist()},
        "segments": [],
    }
    wf = config.get("walk_forward") or {}
    if wf.get("segments"):
        objective = wf.get("objective", "sharpe_ratio")
        for a, b, c in segments(bars.index, int(wf["segments"]), float(wf.get("in_sample_fraction", 0.75))):
            ins = run_columns(bars.iloc[a:b], entries[a:b], exits[a:b], simulate, config, initial, np.arange(total))
            chosen = best_index(ins, objective, int(wf.get("min_trades", 0)), wf.get("max_drawdown"))
            segment = {"in_sample_start": _iso(bars.index[a]), "in_sample_end": _iso(bars.index[b - 1]),
                       "out_of_sample_start": _iso(bars.index[b]), "out_of_sample_end": _iso(bars.index[c - 1]),
                       "chosen_combination": chosen}
            if chosen >= 0:
                symbol = params["symbols"][0]
                segment["in_sample"] = _single(bars.iloc[a:b], entries[a:b], exits[a:b], simulate, config, initial, chosen, symbol)["metrics"]
                oos = _single(bars.iloc[b:c], entries[b:c], exits[b:c], simulate, config, initial, chosen, symbol)
                segment["out_of_sample"], segment["out_of_sample_equity"] = oos["metrics"], oos["equity"]
            result["segments"].append(segment)
    if not channel.send(result):
        best = best_index(every, "sharpe_ratio")
        print(f"{total} combinations; best by Sharpe ratio: combination {best}, Sharpe {every['sharpe_ratio'][best]:.3f}")
    return result
