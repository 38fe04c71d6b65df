"""A sweep's grid cut into sandbox jobs (services/orchestrator/research/chunks.py) and read back
(results.py): the chunks cover the grid's combinations once each, in index order (itertools.product is the
oracle), their results merged are the whole grid's, and the heatmap and ranking agree with pandas."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from services.orchestrator.research import chunks, results, sweep_jobs
from stratexec.backtest.v1 import sweep_pb2
from stratexec.codegen.v1 import codegen_pb2

VALUES = [[10, 20, 30], [1.0, 2.0], [4, 7, 10, 13]]


@pytest.mark.parametrize("target", [1, 2, 3, 4, 5, 7, 8, 12, 23, 24, 1000])
def test_chunks_cover_the_grid_in_index_order_within_the_target(target):
    plan = chunks.plan(VALUES, target)
    listed = [c.values_at(i) for c in plan for i in range(c.size)]
    assert listed == [tuple(float(x) for x in combo) for combo in itertools.product(*VALUES)]
    assert all(c.size <= target for c in plan)
    assert [c.start for c in plan] == list(itertools.accumulate([0] + [c.size for c in plan[:-1]]))


def _result(metrics: dict, blocks: int = 2) -> sweep_pb2.SweepResult:
    n = len(metrics["total_return"])
    out = sweep_pb2.SweepResult(combinations=n, bars=10, periods_per_year=365)
    for key, values in metrics.items():
        getattr(out.metrics, key).extend(values)
    out.blocks.blocks = blocks
    out.blocks.bars.extend([5] * blocks)
    out.blocks.sum.extend([float(b * 100 + i) for b in range(blocks) for i in range(n)])
    out.blocks.sum_squares.extend([float(b * 1000 + i) for b in range(blocks) for i in range(n)])
    return out


def _metrics(rng, n):
    return {"total_return": rng.normal(size=n).tolist(), "cagr": rng.normal(size=n).tolist(),
            "sharpe_ratio": rng.normal(size=n).tolist(), "max_drawdown": (-abs(rng.normal(size=n))).tolist(),
            "win_rate": rng.uniform(size=n).tolist(), "trades": rng.integers(0, 9, size=n).tolist(),
            "open_trades": [0] * n, "calmar": rng.normal(size=n).tolist(), "sortino": rng.normal(size=n).tolist()}


def test_merged_chunks_are_the_whole_grids_result():
    rng = np.random.default_rng(7)
    whole = _metrics(rng, 24)
    parts = [_result({k: v[a:b] for k, v in whole.items()}) for a, b in ((0, 8), (8, 20), (20, 24))]
    merged = sweep_jobs.merge(parts)
    one = _result(whole)
    assert list(merged.metrics.sharpe_ratio) == list(one.metrics.sharpe_ratio)
    assert list(merged.metrics.trades) == list(one.metrics.trades)
    # block sums are blocks x combinations: the chunks' columns side by side
    expected = np.concatenate([np.asarray(p.blocks.sum).reshape(2, -1) for p in parts], axis=1)
    assert list(merged.blocks.sum) == expected.ravel().tolist()


def test_ranking_and_heatmap_agree_with_pandas():
    rng = np.random.default_rng(11)
    metrics = {k: np.asarray(v, dtype=float) for k, v in _metrics(rng, 24).items()}
    parameters = [codegen_pb2.SweptParameter(name=n, values=v) for n, v in zip(("a", "b", "c"), VALUES)]
    frame = pd.DataFrame(list(itertools.product(*VALUES)), columns=["a", "b", "c"])
    frame["sharpe"], frame["trades"] = metrics["sharpe_ratio"], metrics["trades"]
    ok = results.eligible(metrics, "sharpe_ratio", 3, None)
    eligible = frame[frame["trades"] >= 3]
    order = results.ranking(metrics, "sharpe_ratio", 3, None)
    assert list(order[:len(eligible)]) == list(eligible.sort_values("sharpe", ascending=False, kind="stable").index)
    assert sorted(order[len(eligible):]) == list(order[len(eligible):])  # the rest by index
    h = results.heatmap(metrics, parameters, "sharpe_ratio", ok, "c", "a")
    pivot = eligible.pivot_table(index="a", columns="c", values="sharpe", aggfunc="max").reindex(index=VALUES[0], columns=VALUES[2])
    np.testing.assert_array_equal(np.asarray(h.cells).reshape(3, 4), pivot.to_numpy())
