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
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from stratexec_runtime import channel
from stratexec_runtime.metrics import compute_metrics, periods_per_year
from stratexec_runtime.report import _iso, trades_of

BLOCKS = 16
MAX_THREADS = 4  # chunks simulated at once, at most (and never more than the CPUs available)
MIN_CHUNK = 250  # columns: smaller chunks cost more in Python than their thread saves
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


def column_metrics(v: np.ndarray, index: pd.DatetimeIndex, initial: float, closed: np.ndarray,
                   wins: np.ndarray, open_: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """metrics.compute_metrics on each row of ``v`` (columns x (1 + bars): the initial capital, then the
    value at each bar's close), and the per-bar returns."""
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


def _equity_and_trades(pf, close: np.ndarray, initial: float, n: int) -> tuple[np.ndarray, tuple]:
    """(value matrix as sweep_kernel.equity_nb writes it, (closed, winning, open) trade counts per column) of a portfolio
    of ``n`` ungrouped columns: pf.value() and pf.trades' numbers, without the pandas frames of each."""
    from vectorbt.portfolio import dispatch

    from stratexec_runtime.sweep_kernel import equity_nb  # numba: imported where a sweep runs, not where it is planned

    records = pf.order_records
    v = np.empty((n, len(close) + 1))
    if equity_nb(close, records, initial, v) != len(records):
        raise RuntimeError("order records are not in column and bar order")
    col_map = (np.arange(len(records), dtype=np.int64), np.bincount(records["col"], minlength=n).astype(np.int64))
    trades = dispatch.get_exit_trades(records, np.broadcast_to(close[:, None], (len(close), n)), col_map,
                                      engine=pf.engine)
    closed = trades["status"] == 1  # vectorbt TradeStatus: Open=0, Closed=1
    col = trades["col"]
    return v, (np.bincount(col[closed], minlength=n), np.bincount(col[closed & (trades["pnl"] > 0)], minlength=n),
               np.bincount(col[~closed], minlength=n))


def _threads() -> int:
    """Threads for the chunks: the CPUs this process may run on, at most MAX_THREADS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


def _chunks(count: int, most: int, threads: int) -> list[tuple[int, int]]:
    """(start, stop) of equal chunks of at most ``most`` columns, as many as a multiple of ``threads``
    (each thread gets the same work) unless that would make them smaller than MIN_CHUNK columns."""
    rounds = max(1, math.ceil(count / (most * threads)))
    parts = max(1, min(rounds * threads, count // MIN_CHUNK))
    size = math.ceil(count / parts)
    return [(a, min(a + size, count)) for a in range(0, count, size)]


def run_columns(bars: pd.DataFrame, entries: np.ndarray, exits: np.ndarray, simulate, sweep: dict,
                initial: float, columns: np.ndarray, blocks: bool = False) -> dict:
    """Metrics of the given combination indices on these bars, in chunks.

    Chunks run on a few threads: vectorbt's simulation (Rust), the equity kernel and numpy's large
    operations release the GIL, so on a machine with idle cores they overlap. A column's numbers do not
    depend on its chunk (every metric is computed row by row)."""
    k, stops = _stop_grid(sweep)
    close = np.ascontiguousarray(bars["close"].ffill().bfill().to_numpy(dtype=float))  # Portfolio.get_filled_close

    def chunk(bounds: tuple[int, int]) -> tuple[dict, tuple | None]:
        cols = columns[bounds[0]:bounds[1]]
        sig, stop = cols // k, cols % k
        pf = simulate(bars, entries[:, sig], exits[:, sig], {arg: values[stop] for arg, values in stops.items()})
        v, (closed, wins, open_) = _equity_and_trades(pf, close, initial, len(cols))
        del pf
        metrics, r = column_metrics(v, bars.index, initial, closed, wins, open_)
        return metrics, (_blocks(r) if blocks else None)

    threads = _threads()
    bounds = _chunks(len(columns), int(sweep.get("chunk_columns", 2000)), threads)
    if threads > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(min(threads, len(bounds)), thread_name_prefix="sweep") as pool:
            done = list(pool.map(chunk, bounds))
    else:
        done = [chunk(b) for b in bounds]
    out = {key: np.concatenate([m[key] for m, _ in done]) for key in done[0][0]}
    if blocks:
        out["_blocks"] = (done[0][1][0], np.concatenate([b[1] for _, b in done], axis=1),
                          np.concatenate([b[2] for _, b in done], axis=1))
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
