"""The Strategy Optimizer's tools (OptimizeStrategy only): the trial ledger, the parameter sweep (sandbox
jobs in chunks, services/orchestrator/research/sweep_jobs.py) and the walk-forward report. The sweep
tool also turns the best combination into the script the Code Executor runs (codegen.GenerateCode with
parameter_values), so that script is standalone like any other."""
from __future__ import annotations

from typing import Any

import grpc
from pydantic import BaseModel, Field

from services.common import errors
from services.orchestrator.convert import struct
from services.orchestrator.crew.tools import ContextTool
from services.orchestrator.research import results, sweep_jobs
from stratexec.codegen.v1 import codegen_pb2

MAX_SWEEPS = 2  # the request's grid, and at most one narrowed or widened by a language model


class LedgerArgs(BaseModel):
    pass


class SweepArgs(BaseModel):
    ranges: list[dict[str, Any]] = Field(
        default_factory=list,
        description='Optional grid instead of the request\'s: [{"name": "entry.window", "values": [10, 20]} or '
                    '{"name": ..., "start": 10, "stop": 60, "step": 5}]; leave empty to run the request\'s grid. '
                    "Every combination run is counted in the trial ledger.")


class WalkForwardArgs(BaseModel):
    pass


def _combination_words(c) -> str:
    return ", ".join(f"{v.name}={v.value:g}" for v in c.values)


class ReadLedgerTool(ContextTool):
    name: str = "read_trial_ledger"
    description: str = ("Read the trial ledger: how many distinct combinations of this strategy family were already "
                        "run on this data by any execution (the honest count of trials behind any winner).")
    args_schema: type[BaseModel] = LedgerArgs

    def _run(self) -> str:
        def body():
            research = self.ctx.research
            trials, sharpes = research.ledger()
            if research.trials_before is None:
                research.trials_before = trials
            return {"family_sha256": research.family[:12], "trials_so_far": trials,
                    "trials_with_a_sharpe_ratio": len(sharpes), "this_grid": research.sweep.combinations}

        return self.run_step(body)


class RunSweepTool(ContextTool):
    name: str = "run_parameter_sweep"
    description: str = ("Backtest every combination of the parameter grid in the sandbox (vectorbt broadcasting, in "
                        "chunks), record each in the trial ledger, and make the best one the script to execute. "
                        "Returns the best combination, the probability of backtest overfitting and the code_sha256.")
    args_schema: type[BaseModel] = SweepArgs
    service_name: str = "sandbox"

    def _run(self, ranges: list[dict[str, Any]] | None = None) -> str:
        return self.run_step(lambda: self._sweep(ranges or []), {"ranges": ranges or "the request's grid"})

    def _grid(self, ranges: list[dict]) -> tuple[list, str]:
        """The SweptParameters to run: the request's grid, or a model's (checked by codegen)."""
        research = self.ctx.research
        if not ranges:
            return list(research.sweep.parameters), "sweep"
        request = codegen_pb2.GenerateSweepCodeRequest(
            schema=struct(self.ctx.schema), params=self.ctx.params, walk_forward=sweep_jobs.walk_forward_spec(research.request),
            ranges=[codegen_pb2.ParameterRange(**r) for r in ranges])
        return list(self.ctx.clients.call(self.ctx.clients.codegen.GenerateSweepCode, request,
                                          cancel=self.ctx.cancel).parameters), "model"

    def _sweep(self, ranges: list[dict]) -> dict:
        ctx, research = self.ctx, self.ctx.research
        if research.sweeps_run >= MAX_SWEEPS:
            return {"error": f"at most {MAX_SWEEPS} sweeps per optimization; report the best one found"}
        if research.trials_before is None:
            research.trials_before = research.ledger()[0]
        try:
            parameters, source = self._grid(ranges)
        except (grpc.RpcError, TypeError, ValueError) as exc:  # a model's bad grid is its to fix, not a failure
            detail = errors.describe(errors.status_from_rpc_error(exc)) if isinstance(exc, grpc.RpcError) else str(exc)
            return {"error": f"grid refused: {detail}"}
        try:
            sweep_jobs.run(ctx, research, parameters, source)
        except sweep_jobs.SweepFailed as exc:
            ctx.fail(exc.status)
            return {"error": exc.status.message}
        r = research
        index, best = results.best(r.result, r.parameters, r.objective, r.request.min_trades, r.max_drawdown)
        summary = r.summary
        summary.Clear()
        summary.parameters.extend(r.parameters)
        summary.combinations, summary.objective, summary.min_trades = r.result.combinations, r.objective, r.request.min_trades
        if r.max_drawdown is not None:
            summary.max_drawdown = r.max_drawdown
        summary.bars, summary.periods_per_year, summary.chunks = r.result.bars, r.result.periods_per_year, r.chunks
        summary.family_sha256 = r.family
        summary.statistics.trials_in_this_execution = r.combinations_run
        results.pbo_statistics(r.result, summary.statistics)
        if best is None:
            ctx.fail(errors.make_status(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no combination of the {r.result.combinations:,} meets the constraints (min_trades "
                f"{r.request.min_trades}" + (f", max_drawdown {r.max_drawdown:g}%" if r.max_drawdown is not None else "")
                + f") with a defined {r.objective}", reason="NO_ELIGIBLE_COMBINATION"))
            return {"error": "no combination meets the constraints"}
        summary.best.CopyFrom(best)
        reply = ctx.clients.call(ctx.clients.codegen.GenerateCode, codegen_pb2.GenerateCodeRequest(
            schema=struct(ctx.schema), params=ctx.params, parameter_values={v.name: v.value for v in best.values}),
            cancel=ctx.cancel)
        ctx.adopt_code(reply)
        return {"combinations": r.result.combinations, "sandbox_jobs": r.chunks,
                "best": {"index": index, "parameters": _combination_words(best), r.objective: best.objective,
                         "total_return": round(best.total_return, 2), "trades": best.trades},
                "pbo": summary.statistics.pbo_verdict, "code_sha256": reply.sha256}


class RunWalkForwardTool(ContextTool):
    name: str = "run_walk_forward"
    description: str = ("The walk-forward test of the last sweep: per segment, the combination chosen in sample and "
                        "its metrics on the out-of-sample bars only, and the out-of-sample parts stitched together.")
    args_schema: type[BaseModel] = WalkForwardArgs

    def _run(self) -> str:
        def body():
            r = self.ctx.research
            if r.result is None:
                return {"error": "run run_parameter_sweep first"}
            if not r.request.walk_forward_segments:
                return {"segments": 0, "note": "no walk-forward test was asked for"}
            segments = results.walk_forward_segments(r.chunk_segments, r.objective)
            report = r.summary.walk_forward
            report.Clear()
            report.segments.extend(segments)
            report.in_sample_fraction = r.request.in_sample_fraction or 0.75
            equity, metrics = results.stitched(segments, self.ctx.params.initial_capital)
            report.out_of_sample_equity.extend(equity)
            if metrics is not None:
                report.out_of_sample.CopyFrom(metrics)
            return {"segments": [{"in_sample": f"{s.in_sample_start}..{s.in_sample_end}",
                                  "out_of_sample": f"{s.out_of_sample_start}..{s.out_of_sample_end}",
                                  "chosen": s.chosen_combination,
                                  "out_of_sample_return": round(s.out_of_sample.total_return, 2)} for s in segments],
                    "stitched_out_of_sample_return": round(metrics.total_return, 2) if metrics else None}

        return self.run_step(body)


def optimizer_tools(ctx, search_tool) -> list:
    return [search_tool, ReadLedgerTool(ctx=ctx), RunSweepTool(ctx=ctx), RunWalkForwardTool(ctx=ctx)]
