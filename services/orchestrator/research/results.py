"""An optimization read back: combinations ranked by the objective, a heatmap of two parameters, the
walk-forward segments chosen across chunks and stitched out of sample, and the overfitting statistics
(PBO by CSCV on the sweep's block sums; PSR and DSR of the best combination against the trial ledger)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from services.research import statistics as st
from stratexec.backtest.v1 import backtest_pb2, sweep_pb2
from stratexec.orchestrator.v1 import optimization_pb2
from stratexec_runtime.metrics import compute_metrics
from stratexec_runtime.sweep import best_index

# objective -> the field of a backtest Metrics message holding it
METRICS_FIELD = {"sharpe_ratio": "sharpe_ratio", "total_return": "total_return", "cagr": "cagr",
                 "calmar": "calmar_ratio", "sortino": "sortino_ratio"}
CONFIDENCE = 0.95


def arrays(result: sweep_pb2.SweepResult) -> dict[str, np.ndarray]:
    return {f.name: np.asarray(getattr(result.metrics, f.name), dtype=float)
            for f in sweep_pb2.SweepMetrics.DESCRIPTOR.fields}


def eligible(metrics: dict, objective: str, min_trades: int, max_drawdown: float | None) -> np.ndarray:
    """Combinations that may be best (as stratexec_runtime.sweep.best_index decides)."""
    ok = np.isfinite(metrics[objective]) & (metrics["trades"] >= min_trades)
    if max_drawdown is not None:
        ok &= metrics["max_drawdown"] >= -abs(max_drawdown)
    return ok


def ranking(metrics: dict, objective: str, min_trades: int, max_drawdown: float | None) -> np.ndarray:
    """Combination indices, best first: eligible ones by the objective (ties by index), then the rest by index."""
    ok = eligible(metrics, objective, min_trades, max_drawdown)
    index = np.arange(len(ok))
    score = np.where(ok, metrics[objective], -np.inf)
    return np.lexsort((index, -score, ~ok))


def combination(index: int, rank: int, metrics: dict, parameters, objective: str) -> optimization_pb2.Combination:
    shape = [len(p.values) for p in parameters]
    position = np.unravel_index(index, shape) if shape else ()
    out = optimization_pb2.Combination(
        index=index, rank=rank,
        values=[optimization_pb2.ParameterValue(name=p.name, value=p.values[i]) for p, i in zip(parameters, position)],
        total_return=metrics["total_return"][index], cagr=metrics["cagr"][index],
        max_drawdown=metrics["max_drawdown"][index], trades=int(metrics["trades"][index]),
        open_trades=int(metrics["open_trades"][index]))
    for field, key in (("objective", objective), ("sharpe_ratio", "sharpe_ratio"), ("win_rate", "win_rate"),
                       ("calmar", "calmar"), ("sortino", "sortino")):
        value = float(metrics[key][index])
        if math.isfinite(value):
            setattr(out, field, value)
    return out


def heatmap(metrics: dict, parameters, objective: str, ok: np.ndarray, x: str, y: str) -> optimization_pb2.Heatmap:
    """The best objective over the other parameters for each (x, y); NaN where none is eligible."""
    names = [p.name for p in parameters]
    shape = [len(p.values) for p in parameters]
    grid = np.where(ok, metrics[objective], -np.inf).reshape(shape)
    ix, iy = names.index(x), names.index(y)
    other = tuple(i for i in range(len(shape)) if i not in (ix, iy))
    best = grid.max(axis=other) if other else grid
    if ix < iy:  # rows must be y
        best = best.T
    best = np.where(np.isfinite(best), best, np.nan)
    return optimization_pb2.Heatmap(x=x, y=y, x_values=list(parameters[ix].values), y_values=list(parameters[iy].values),
                                    cells=best.ravel().tolist(), objective=objective)


def _objective_of(metrics: backtest_pb2.Metrics, objective: str) -> float:
    field = METRICS_FIELD[objective]
    if objective == "calmar" and not metrics.HasField("calmar_ratio"):
        return metrics.cagr / abs(metrics.max_drawdown) if metrics.max_drawdown < 0 else math.nan
    if metrics.DESCRIPTOR.fields_by_name[field].has_presence and not metrics.HasField(field):
        return math.nan
    return float(getattr(metrics, field))


def walk_forward_segments(chunk_segments, objective: str) -> list[sweep_pb2.WalkForwardSegment]:
    """Per segment, the chunks' in-sample winners compared by the objective (the first wins a tie, as in one
    job over the whole grid), with the chosen combination's index in the whole grid."""
    if not chunk_segments or not chunk_segments[0][1]:
        return []
    out = []
    for k in range(len(chunk_segments[0][1])):
        chosen, best = None, -math.inf
        for chunk, segments in chunk_segments:
            s = segments[k]
            if s.chosen_combination < 0:
                continue
            value = _objective_of(s.in_sample, objective)
            if math.isfinite(value) and value > best:
                chosen, best = (chunk, s), value
        segment = sweep_pb2.WalkForwardSegment()
        if chosen is None:
            segment.CopyFrom(chunk_segments[0][1][k])
            segment.chosen_combination = -1
        else:
            segment.CopyFrom(chosen[1])
            segment.chosen_combination = chosen[0].start + chosen[1].chosen_combination
        out.append(segment)
    return out


def _metrics_proto(m: dict) -> backtest_pb2.Metrics:
    return backtest_pb2.Metrics(**{f.name: m[f.name] for f in backtest_pb2.Metrics.DESCRIPTOR.fields
                                   if m.get(f.name) is not None})


def stitched(segments, initial: float) -> tuple[list[backtest_pb2.EquityPoint], backtest_pb2.Metrics | None]:
    """The segments' out-of-sample equity chained (each starts from the previous final value), and its metrics:
    the pinned definitions on that curve, with the segments' closed trades and wins summed."""
    points, scale = [], 1.0
    trades = wins = open_trades = days = 0
    for s in segments:
        if s.chosen_combination < 0 or not s.out_of_sample_equity:
            continue
        days += (pd.Timestamp(s.out_of_sample_end) - pd.Timestamp(s.out_of_sample_start)).days + 1
        points += [backtest_pb2.EquityPoint(time=p.time, value=p.value * scale) for p in s.out_of_sample_equity]
        scale *= s.out_of_sample_equity[-1].value / initial
        trades += s.out_of_sample.trades
        open_trades += s.out_of_sample.open_trades
        if s.out_of_sample.HasField("win_rate"):
            wins += round(s.out_of_sample.win_rate * s.out_of_sample.trades / 100.0)
    if not points:
        return [], None
    equity = pd.Series([p.value for p in points], index=pd.DatetimeIndex([p.time for p in points]))
    m = compute_metrics(equity, [], initial)
    # growth per year of out-of-sample time: the in-sample stretches between the parts are not in the curve
    growth = float(equity.iloc[-1]) / initial
    cagr = (growth ** (365.25 / days) - 1.0) * 100.0 if growth > 0 else -100.0
    m.update(trades=trades, open_trades=open_trades, win_rate=wins / trades * 100.0 if trades else None, cagr=cagr,
             calendar_days=days, cagr_reliable=days >= 365,
             calmar_ratio=cagr / abs(m["max_drawdown"]) if m["max_drawdown"] < 0 else None)
    return points, _metrics_proto(m)


def pbo_statistics(result: sweep_pb2.SweepResult, out: optimization_pb2.OverfittingStatistics) -> None:
    """PBO by CSCV over the sweep's combinations (needs two or more)."""
    n, b = result.combinations, result.blocks.blocks
    if n < 2 or b < 2:
        out.pbo_verdict = "PBO needs at least two combinations"
        return
    sums = np.asarray(result.blocks.sum).reshape(b, n)
    squares = np.asarray(result.blocks.sum_squares).reshape(b, n)
    found = st.pbo_from_blocks(np.asarray(result.blocks.bars), sums, squares, chunk=max(16, 2_000_000 // n))
    out.pbo, out.pbo_splits, out.pbo_blocks = found.pbo, found.splits, found.blocks
    out.degradation_slope, out.probability_of_loss = found.slope, found.probability_of_loss
    out.pbo_verdict = st.pbo_words(found)


def deflated_statistics(equity: list, initial: float, periods_per_year: int, trials: int, sharpes: list[float],
                        out: optimization_pb2.OverfittingStatistics) -> None:
    """PSR and DSR of the best combination's per-bar returns (its re-run backtest's equity), deflated by the
    ledger's trials and the variance of their per-bar Sharpe ratios."""
    values = np.concatenate([[initial], [p.value for p in equity]])
    returns = values[1:] / values[:-1] - 1.0
    out.trials = trials
    if len(returns) < 3 or np.std(returns) == 0:
        out.dsr_verdict = "DSR undefined: the best combination's returns do not vary"
        return
    sr, skew, kurt, t = st.moments(returns)
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    out.sharpe_ratio = sr * math.sqrt(periods_per_year)
    out.skewness, out.kurtosis, out.observations = skew, kurt, t
    out.psr = st.psr(sr, t, skew, kurt)
    out.dsr, sr0 = st.dsr(sr, t, skew, kurt, trials, variance)
    out.deflated_benchmark = sr0 * math.sqrt(periods_per_year)
    out.significant = out.dsr >= CONFIDENCE
    out.dsr_verdict = st.dsr_words(out.dsr, trials, CONFIDENCE)


def best(result: sweep_pb2.SweepResult, parameters, objective: str, min_trades: int, max_drawdown):
    """(index, Combination) of the best eligible combination; (-1, None) when none is."""
    metrics = arrays(result)
    index = best_index(metrics, objective, min_trades, max_drawdown)
    return (index, combination(index, 1, metrics, parameters, objective)) if index >= 0 else (-1, None)
