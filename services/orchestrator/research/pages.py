"""GetOptimizationResults: the stored summary, a page of combinations best first, and the heatmap of two
swept parameters (the first two unless the request names others)."""
from __future__ import annotations

from services.common import errors, page_tokens
from services.orchestrator.research import results
from stratexec.backtest.v1 import sweep_pb2
from stratexec.orchestrator.v1 import execution_pb2, optimization_pb2

DEFAULT_PAGE, MAX_PAGE = 50, 1000
METHOD = "GetOptimizationResults"


def _axes(names: list[str], request) -> tuple[str, str] | None:
    x, y = request.heatmap_x, request.heatmap_y
    if not x and not y and len(names) < 2:
        return None
    x = x or next((n for n in names if n != y), "")
    y = y or next((n for n in names if n != x), "")
    problems = [(field, f"unknown parameter {value!r}; the swept parameters are: {', '.join(names)}")
                for field, value in (("heatmap_x", x), ("heatmap_y", y)) if value not in names]
    if not problems and x == y:
        problems.append(("heatmap_y", "the heatmap needs two different parameters"))
    if problems:
        raise errors.invalid_argument(problems[0][1], problems, reason="INVALID_HEATMAP")
    return x, y


def response(stored, request, user: str) -> execution_pb2.GetOptimizationResultsResponse:
    summary = optimization_pb2.OptimizationSummary.FromString(stored.summary_pb)
    sweep = sweep_pb2.SweepResult.FromString(stored.result_pb)
    names = [p.name for p in summary.parameters]
    axes = _axes(names, request)
    if not 0 <= request.page_size <= MAX_PAGE:
        raise errors.invalid_argument(f"page_size must be between 0 and {MAX_PAGE}", [("page_size", f"0..{MAX_PAGE}")])
    size = request.page_size or DEFAULT_PAGE
    scope = {"user_id": user, "execution_id": stored.execution_id}
    offset = int(page_tokens.decode(request.page_token, scope, METHOD, 1)[0]) if request.page_token else 0
    max_dd = summary.max_drawdown if summary.HasField("max_drawdown") else None
    metrics = results.arrays(sweep)
    order = results.ranking(metrics, summary.objective, summary.min_trades, max_dd)
    ok = results.eligible(metrics, summary.objective, summary.min_trades, max_dd)
    page = order[offset:offset + size]
    out = execution_pb2.GetOptimizationResultsResponse(summary=summary, combinations=[
        results.combination(int(i), offset + k + 1 if ok[i] else 0, metrics, summary.parameters, summary.objective)
        for k, i in enumerate(page)])
    if offset + size < len(order):
        out.next_page_token = page_tokens.encode(scope, [str(offset + size)])
    if axes is not None:
        out.heatmap.CopyFrom(results.heatmap(metrics, summary.parameters, summary.objective, ok, *axes))
    return out
