"""What one OptimizeStrategy execution carries through its crew: the request, the grid checked at submit,
the ledger's key, and what the Strategy Optimizer's tools found."""
from __future__ import annotations

import dataclasses
from typing import Callable

from stratexec.backtest.v1 import sweep_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.orchestrator.v1 import execution_pb2, optimization_pb2


@dataclasses.dataclass
class Research:
    request: execution_pb2.OptimizeStrategyRequest  # ranges, objective, constraints, walk-forward (no schema)
    sweep: codegen_pb2.GenerateSweepCodeResponse  # the whole grid, generated and checked at submit
    family: str  # the ledger's key: strategy family + data window
    # (trials [(combination sha256, values, annualised Sharpe, periods per year)], source): into the ledger
    record_trials: Callable[[list, str], None]
    ledger: Callable[[], tuple[int, list[float]]]  # () -> (distinct trials of the family, their per-bar Sharpes)
    chunk_combinations: int = 10_000
    timeout_s: float = 600.0
    trials_before: int | None = None  # the ledger's count before this execution's first sweep
    sweeps_run: int = 0
    combinations_run: int = 0  # over every sweep of this execution (a model's narrowed grid too)
    result: sweep_pb2.SweepResult | None = None  # the last sweep, merged over its chunks
    parameters: list = dataclasses.field(default_factory=list)  # its SweptParameters
    chunk_segments: list = dataclasses.field(default_factory=list)  # [(Chunk, [WalkForwardSegment])]
    chunks: int = 0
    summary: optimization_pb2.OptimizationSummary = dataclasses.field(
        default_factory=optimization_pb2.OptimizationSummary)

    @property
    def objective(self) -> str:
        return self.request.objective or "sharpe_ratio"

    @property
    def max_drawdown(self) -> float | None:
        return self.request.max_drawdown if self.request.HasField("max_drawdown") else None
