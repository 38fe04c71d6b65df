"""OptimizeStrategy's checks at submit, before anything is stored: the grid, objective, constraints and
walk-forward settings (codegen.GenerateSweepCode, whose field violations are renamed to the request's
fields), and the trial ledger's key for the strategy family and data window."""
from __future__ import annotations

import hashlib

import grpc
from google.rpc import error_details_pb2

from services.common import errors
from services.orchestrator.checks import call_codegen
from services.orchestrator.research.sweep_jobs import walk_forward_spec
from stratexec.codegen.v1 import codegen_pb2
from stratexec.orchestrator.v1 import execution_pb2

# codegen's field -> OptimizeStrategyRequest's
FIELDS = {"walk_forward.objective": "objective", "walk_forward.segments": "walk_forward_segments",
          "walk_forward.in_sample_fraction": "in_sample_fraction", "walk_forward.min_trades": "min_trades",
          "walk_forward.max_drawdown": "max_drawdown"}


def _renamed(error: errors.ApiError) -> errors.ApiError:
    status = error.to_status()
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                v.field = FIELDS.get(v.field, v.field)
            detail.Pack(bad)
    return errors.ApiError.from_status(status)


def request_problems(request: execution_pb2.OptimizeStrategyRequest) -> list[tuple[str, str]]:
    problems = []
    if not request.ranges:
        problems.append(("ranges", "give at least one parameter range (AnalyzeStrategy lists the parameters)"))
    if request.min_trades < 0:
        problems.append(("min_trades", "must not be negative"))
    if request.HasField("max_drawdown") and not request.max_drawdown > 0:
        problems.append(("max_drawdown", "a positive number of percent, such as 25"))
    return problems


async def check_grid(clients, schema, params, request, max_combinations: int) -> codegen_pb2.GenerateSweepCodeResponse:
    """The whole grid's sweep script: INVALID_ARGUMENT (with the request's field names) for bad ranges, an
    unknown objective, too many combinations or walk-forward segments too short for the warm-up."""
    sweep_request = codegen_pb2.GenerateSweepCodeRequest(schema=schema, params=params, ranges=request.ranges,
                                                         max_combinations=max_combinations,
                                                         walk_forward=walk_forward_spec(request))
    try:
        return await call_codegen(clients, clients.codegen.GenerateSweepCode, sweep_request)
    except errors.ApiError as exc:
        if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
            raise _renamed(exc) from None
        raise


def family(sweep: codegen_pb2.GenerateSweepCodeResponse, params) -> str:
    """The ledger's key: the strategy family and the data window it is tried on."""
    window = [list(params.symbols), params.timeframe, params.start_date, params.end_date, params.prices]
    return hashlib.sha256(f"{sweep.family_sha256}|{window}".encode()).hexdigest()


def stored_request(request: execution_pb2.OptimizeStrategyRequest) -> bytes:
    """The request as the worker needs it (the schema is stored as the execution's strategy)."""
    kept = execution_pb2.OptimizeStrategyRequest()
    kept.CopyFrom(request)
    kept.ClearField("schema")
    return kept.SerializeToString()
