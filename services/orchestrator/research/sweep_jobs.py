"""Running a grid: one sandbox RunSweep job per chunk (chunks.py), one after another, each recorded in the
trial ledger as it finishes and reported as a progress event (combinations done / total, the best so far).

A cancelled execution cancels the running job; the chunks that finished stay in the ledger. A job whose
sandbox replica dies is retried by gRPC (UNAVAILABLE) and round robin sends it to another replica; the
merged result is the same whichever replica ran which chunk.
"""
from __future__ import annotations

import hashlib
import json
import math

import grpc
import numpy as np

from services.common import errors
from services.orchestrator.convert import struct
from services.orchestrator.research import chunks as chunks_mod
from services.orchestrator.research.state import Research
from stratexec.backtest.v1 import sweep_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.sandbox.v1 import sandbox_pb2
from stratexec_runtime.sweep import best_index

METRIC_FIELDS = [f.name for f in sweep_pb2.SweepMetrics.DESCRIPTOR.fields]


class SweepFailed(Exception):
    """A sandbox job of the sweep did not succeed; ``status`` says why."""

    def __init__(self, status):
        super().__init__(status.message)
        self.status = status


def walk_forward_spec(request) -> codegen_pb2.WalkForwardSpec:
    """The request's objective, constraints and walk-forward settings as codegen checks them."""
    spec = codegen_pb2.WalkForwardSpec(segments=request.walk_forward_segments, objective=request.objective or "sharpe_ratio",
                                       min_trades=request.min_trades, in_sample_fraction=request.in_sample_fraction)
    if request.HasField("max_drawdown"):
        spec.max_drawdown = request.max_drawdown
    return spec


def combination_sha(names: list[str], values) -> str:
    return hashlib.sha256(json.dumps(dict(zip(names, map(float, values))), sort_keys=True).encode()).hexdigest()


def _metric_arrays(parts: list[sweep_pb2.SweepResult]) -> dict[str, np.ndarray]:
    return {f: np.concatenate([np.asarray(getattr(p.metrics, f)) for p in parts]) for f in METRIC_FIELDS}


def merge(parts: list[sweep_pb2.SweepResult]) -> sweep_pb2.SweepResult:
    """The chunks' results as one grid's: metrics concatenated, block sums side by side (blocks x combinations)."""
    first = parts[0]
    out = sweep_pb2.SweepResult(combinations=sum(p.combinations for p in parts), bars=first.bars,
                                periods_per_year=first.periods_per_year)
    for field, values in _metric_arrays(parts).items():
        getattr(out.metrics, field).extend(values.tolist())
    b = first.blocks.blocks
    out.blocks.blocks, out.blocks.bars[:] = b, list(first.blocks.bars)
    for name in ("sum", "sum_squares"):
        matrix = np.concatenate([np.asarray(getattr(p.blocks, name)).reshape(b, p.combinations) for p in parts], axis=1)
        getattr(out.blocks, name).extend(matrix.ravel().tolist())
    return out


def _best_words(research: Research, names, parts, done_chunks) -> str:
    metrics = _metric_arrays(parts)
    best = best_index(metrics, research.objective, research.request.min_trades, research.max_drawdown)
    if best < 0:
        return "no combination meets the constraints yet"
    index, offset = best, 0
    for chunk, part in zip(done_chunks, parts):
        if index < offset + part.combinations:
            values = chunk.values_at(index - offset)
            break
        offset += part.combinations
    where = ", ".join(f"{n}={v:g}" for n, v in zip(names, values))
    return f"best so far {research.objective} {metrics[research.objective][best]:.3f} at {where}"


def run(ctx, research: Research, parameters: list[codegen_pb2.SweptParameter], source: str) -> None:
    """Run the grid ``parameters`` (names and values in grid order) chunk by chunk; fills research.result,
    chunk_segments and chunks. Raises SweepFailed (and clients' Cancelled when the execution is cancelled)."""
    names = [p.name for p in parameters]
    plan = chunks_mod.plan([list(p.values) for p in parameters], research.chunk_combinations)
    total = sum(c.size for c in plan)
    uploads = ctx.load_uploads() if ctx.load_uploads else []
    spec = walk_forward_spec(research.request)
    parts, segments, done = [], [], []
    for k, chunk in enumerate(plan, 1):
        if len(plan) == 1 and source == "sweep":  # the whole grid: the script generated and checked at submit
            code, combinations = research.sweep.code, research.sweep.combinations
        else:
            generated = ctx.clients.call(ctx.clients.codegen.GenerateSweepCode, codegen_pb2.GenerateSweepCodeRequest(
                schema=struct(ctx.schema), params=ctx.params, walk_forward=spec,
                ranges=[codegen_pb2.ParameterRange(name=n, values=list(v)) for n, v in zip(names, chunk.values)]),
                cancel=ctx.cancel)
            code, combinations = generated.code, generated.combinations
        reply = ctx.clients.call(ctx.clients.sandbox.RunSweep, sandbox_pb2.RunSweepRequest(
            code=code, params=ctx.params, execution_id=ctx.execution_id, combinations=combinations,
            timeout_seconds=int(research.timeout_s), uploads=uploads), timeout=research.timeout_s + 30, cancel=ctx.cancel)
        if reply.outcome != sandbox_pb2.RUN_OUTCOME_SUCCEEDED:
            status = reply.error if reply.HasField("error") else errors.make_status(
                grpc.StatusCode.ABORTED, "the sweep job failed", reason="SWEEP_FAILED")
            status.message = f"sandbox: sweep job {k} of {len(plan)}: {sandbox_pb2.RunOutcome.Name(reply.outcome)}: {status.message}"
            raise SweepFailed(status)
        part = reply.result
        sharpe = part.metrics.sharpe_ratio
        research.record_trials([(combination_sha(names, chunk.values_at(i)),
                                 dict(zip(names, map(float, chunk.values_at(i)))),
                                 None if math.isnan(sharpe[i]) else float(sharpe[i]), part.periods_per_year)
                                for i in range(part.combinations)], source)
        parts.append(part)
        segments.append((chunk, list(part.segments)))
        done.append(chunk)
        finished = sum(p.combinations for p in parts)
        ctx.log("info", "optimizer", f"sweep: {finished:,}/{total:,} combinations ({k}/{len(plan)} sandbox jobs, "
                                     f"{reply.duration_ms / 1000:.1f} s), {_best_words(research, names, parts, done)}")
    research.result = merge(parts)
    research.parameters = list(parameters)
    research.chunk_segments = segments
    research.chunks = len(plan)
    research.sweeps_run += 1
    research.combinations_run += total
