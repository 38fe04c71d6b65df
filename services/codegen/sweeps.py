"""GenerateSweepCode: strategy + parameter ranges (+ walk-forward) -> one sweep script.

Every check happens here, before anything runs: the ranges against the named
parameters (grid.py), the objective and constraints, and walk-forward segments
long enough for the longest indicator's warm-up.
"""
from __future__ import annotations

import datetime as dt

import grpc

from services.codegen import compiler, emit, grid as grid_mod, parameters as parameters_mod, sweep_emit
from services.common import errors
from stratexec.codegen.v1 import codegen_pb2
from stratexec_runtime.sweep import OBJECTIVES

DEFAULT_IN_SAMPLE = 0.75


def _walk_forward(spec, max_bars: int, warmup: int) -> dict:
    if spec is None:
        return {}
    objective = spec.objective or "sharpe_ratio"
    if objective not in OBJECTIVES:
        raise errors.invalid_argument(f"unknown objective {objective!r}", [(
            "walk_forward.objective", f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")],
            reason="INVALID_OBJECTIVE")
    if spec.segments == 0:
        return {}
    problems = []
    fraction = spec.in_sample_fraction or DEFAULT_IN_SAMPLE
    if not 0 < fraction < 1:
        problems.append(("walk_forward.in_sample_fraction", "must be between 0 and 1"))
    if spec.segments < 0 or spec.segments > 50:
        problems.append(("walk_forward.segments", "must be between 1 and 50"))
    if spec.min_trades < 0:
        problems.append(("walk_forward.min_trades", "must not be negative"))
    if not problems:
        segment = max_bars // spec.segments
        shortest = int(min(segment * fraction, segment * (1 - fraction)))
        if shortest < max(warmup, 2):
            problems.append(("walk_forward.segments", (
                f"{spec.segments} segments leave about {shortest} bars for the shorter part of each segment, fewer than "
                f"the {warmup} bars the longest indicator needs to warm up; use at most "
                f"{max(1, int(max_bars * min(fraction, 1 - fraction) // max(warmup, 2)))} segments")))
    if problems:
        raise errors.invalid_argument(problems[0][1], problems, reason="INVALID_WALK_FORWARD")
    out = {"segments": spec.segments, "in_sample_fraction": fraction, "objective": objective, "min_trades": spec.min_trades}
    if spec.HasField("max_drawdown"):
        out["max_drawdown"] = abs(spec.max_drawdown)
    return out


def _max_bars(p) -> int:
    """Upper bound of the bars in the date range (every calendar day trades)."""
    days = (dt.date.fromisoformat(p.end_date) - dt.date.fromisoformat(p.start_date)).days + 1
    return days if p.timeframe != "1w" else max(1, days // 7 + 1)


def longest_lookback(analysis: compiler.Analysis) -> int:
    """Bars before the longest indicator of the strategy has a value."""
    return max((s.warmup for n in analysis.condition_nodes for r in n.rules for s in r.condition.series_needed()), default=0)


def generate_sweep(doc: dict, params, ranges, max_combinations: int = 0, walk_forward=None) -> codegen_pb2.GenerateSweepCodeResponse:
    base = compiler.analyze(doc, params)
    if base.params.direction != "long":  # the sweep kernel (stratexec_runtime.sweep) trades long positions only
        raise errors.ApiError(grpc.StatusCode.UNIMPLEMENTED, f"sweeps of direction {base.params.direction} are not "
                              "implemented: a sweep trades long positions only; run single backtests for shorts",
                              reason="SWEEP_DIRECTION_UNIMPLEMENTED", metadata={"direction": base.params.direction})
    if base.sizing not in ("percent", "equal"):  # the sweep sizes every entry on the cash available
        raise errors.ApiError(grpc.StatusCode.UNIMPLEMENTED, f"sweeps with position_sizing {base.sizing} are not "
                              "implemented: a sweep invests exposure of the cash available per entry",
                              reason="SWEEP_SIZING_UNIMPLEMENTED", metadata={"position_sizing": base.sizing})
    parameters = parameters_mod.extract(base.doc, base.params.timeframe)
    grid = grid_mod.expand(ranges, parameters, max_combinations)
    # The longest warm-up over the grid: the largest value of every swept window.
    widest = {q.name: max(v) for q, v in zip(grid.parameters, grid.values) if q.integer and parameters_mod.is_signal(q)}
    lookback = longest_lookback(compiler.analyze(parameters_mod.substitute(base.doc, parameters, widest), params)) if widest else longest_lookback(base)
    wf = _walk_forward(walk_forward, _max_bars(base.params), lookback)
    code, _warmup = sweep_emit.emit_sweep(base.doc, params, parameters, grid, wf)
    return codegen_pb2.GenerateSweepCodeResponse(
        code=code, sha256=emit.sha256(code), combinations=grid.combinations, longest_warmup_bars=lookback,
        parameters=[codegen_pb2.SweptParameter(name=n, values=list(v)) for n, v in zip(grid.names, grid.values)],
        family_sha256=parameters_mod.family(base.doc, parameters),
    )
