"""Research mode end to end: `stratexec optimize` and OptimizeStrategy on the stack of our four services, whose
orchestrator cuts sweeps into sandbox jobs of at most 40 combinations here (tests/e2e/conftest.py: so a small
grid runs in several jobs, and progress, cancellation and the merge are exercised), checked against single backtests through
ExecuteStrategy, pandas, and the papers' formulas written out here."""
from __future__ import annotations

import math
import random
import sqlite3

import grpc
import numpy as np
import pandas as pd
import pytest
from google.protobuf import struct_pb2
from scipy import stats

from services.codegen import parameters
from services.research import statistics
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc
from stratexec.memory.v1 import memory_pb2, memory_pb2_grpc
from stratexec.orchestrator.v1 import execution_pb2 as pb
from stratexec.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from stratexec_cli import optimize
from stratexec_cli.client import Client, ClientError
from tests.e2e.conftest import EXAMPLE, SWEEP_CHUNK
from tests.e2e.test_cli import STRATEGY, cli
from tests.sandbox.test_execute_code import bad_request

R = codegen_pb2.ParameterRange
PARAMS = backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2019-01-01", end_date="2024-12-31")
GRID_FLAGS = ["--param", "entry.window=10:60:5", "--param", "entry.drop_pct=2:8:1", "--param", "tp.target_pct=4,7,10"]


@pytest.fixture(scope="module")
def research_stack(stack):
    return {**stack, "database": next(stack["orchestrator"].log_path.parent.rglob("orchestrator.db"))}


@pytest.fixture(scope="module")
def client(research_stack) -> Client:
    return Client(research_stack["orchestrator"].address)


@pytest.fixture(scope="module")
def optimized(research_stack, client, tmp_path_factory):
    """The issue's command, as a user types it: (execution id, CLI output, every combination, the results)."""
    addr = research_stack["orchestrator"].address
    proc = cli(addr, "optimize", str(STRATEGY), "--symbols", "BTC", "--start", "2019-01-01", "--end", "2024-12-31",
               *GRID_FLAGS, "--walk-forward", "5")
    assert proc.returncode == 0, proc.stderr
    execution_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("execution "))
    pages, token = [], ""
    while True:
        reply = client.optimization(execution_id, page_size=100, page_token=token)
        pages.append(reply)
        token = reply.next_page_token
        if not token:
            break
    combinations = [c for page in pages for c in page.combinations]
    return execution_id, proc.stdout, combinations, pages[0]


def _frame(combinations) -> pd.DataFrame:
    rows = [{**{v.name: v.value for v in c.values}, "index": c.index, "rank": c.rank, "trades": c.trades,
             "sharpe": c.sharpe_ratio if c.HasField("sharpe_ratio") else np.nan} for c in combinations]
    return pd.DataFrame(rows).set_index("index").sort_index()


def test_the_command_goes_through_optimizing_with_progress_and_prints_the_verdicts(optimized, client):
    execution_id, out, _, reply = optimized
    statuses = [e.message.split(" ")[0].rstrip(":") for e in client.watch(execution_id)
                if e.type == pb.EVENT_TYPE_STATUS_CHANGED]
    assert statuses == ["queued", "analyzing", "generating", "optimizing", "executing", "completed"]
    progress = [e.log.message for e in client.watch(execution_id) if e.log.source == "optimizer" and "sweep:" in e.log.message]
    assert len(progress) == reply.summary.chunks > 1  # one event per sandbox job
    assert progress[-1].startswith("sweep: 231/231 combinations") and "best so far sharpe_ratio" in progress[-1]
    assert client.get(execution_id).kind == pb.EXECUTION_KIND_OPTIMIZATION
    for words in ("Optimization: 231 combinations", "DSR ", "after 231 trials", "PBO ", "12,870 CSCV splits",
                  "Walk-forward: 5 segments", "Out of sample, stitched"):
        assert words in out, words


def test_the_code_executor_remembers_the_winner_with_its_verdict(optimized, research_stack):
    execution_id, _, _, reply = optimized
    found, token = [], ""
    with grpc.insecure_channel(research_stack["memory"].address) as channel:
        while True:
            listed = memory_pb2_grpc.MemoryServiceStub(channel).ListMemories(
                memory_pb2.ListMemoriesRequest(user_id="default", page_size=200, page_token=token))
            found += [m for m in listed.memories if m.metadata.fields.get("execution_id") and
                      m.metadata["execution_id"] == execution_id]
            if not (token := listed.next_page_token):
                break
    assert len(found) == 1
    st = reply.summary.statistics
    assert f"Optimised over 231 combinations ({st.trials:,} trials in the ledger)" in found[0].content
    assert st.dsr_verdict in found[0].content
    assert (found[0].metadata["dsr"], found[0].metadata["significant"]) == (round(st.dsr, 4), st.significant)
    if not st.significant:
        assert "does not survive the deflated Sharpe test" in found[0].content


def test_every_combination_is_listed_once_best_first_and_the_heatmap_is_their_pivot(optimized):
    _, _, combinations, reply = optimized
    frame = _frame(combinations)
    assert sorted(frame.index) == list(range(231)) and reply.summary.combinations == 231
    ranked = frame[frame["rank"] > 0].sort_values("rank")
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["sharpe"].is_monotonic_decreasing
    assert reply.summary.best.index == ranked.index[0] == frame["sharpe"].idxmax()
    # the heatmap: the best Sharpe over tp.target_pct for each (entry.drop_pct, entry.window), by pandas
    h = reply.heatmap
    assert (h.x, h.y) == ("entry.drop_pct", "entry.window")
    pivot = frame.pivot_table(index="entry.window", columns="entry.drop_pct", values="sharpe", aggfunc="max")
    cells = np.asarray(h.cells).reshape(len(h.y_values), len(h.x_values))
    np.testing.assert_allclose(cells, pivot.loc[list(h.y_values), list(h.x_values)].to_numpy(), rtol=0, atol=0)


def test_the_sweep_in_sandbox_jobs_equals_one_job_over_the_whole_grid(optimized, research_stack):
    """The chunks' results merged (metrics, block sums, each walk-forward segment's choice across chunks) are
    those of a single RunSweep over the whole grid, exactly: whichever replica ran which chunk."""
    _, _, combinations, reply = optimized
    assert SWEEP_CHUNK == 40 and reply.summary.chunks == 7  # 231 combinations: jobs of 33 (one entry.window pair)
    body = struct_pb2.Struct()
    body.update(EXAMPLE)
    with grpc.insecure_channel(research_stack["codegen"].address) as channel:
        generated = codegen_pb2_grpc.CodegenServiceStub(channel).GenerateSweepCode(codegen_pb2.GenerateSweepCodeRequest(
            schema=body, params=PARAMS, ranges=[optimize.parse_param(flag) for flag in GRID_FLAGS[1::2]],
            walk_forward=codegen_pb2.WalkForwardSpec(segments=5)))
    with grpc.insecure_channel(research_stack["sandbox"].address) as channel:
        one = sandbox_pb2_grpc.SandboxServiceStub(channel).RunSweep(sandbox_pb2.RunSweepRequest(
            code=generated.code, params=PARAMS, execution_id="one-job", combinations=231, timeout_seconds=300),
            timeout=320).result
    by_index = sorted(combinations, key=lambda c: c.index)
    assert [c.total_return for c in by_index] == list(one.metrics.total_return)
    assert [c.trades for c in by_index] == list(one.metrics.trades)
    assert [c.sharpe_ratio if c.HasField("sharpe_ratio") else None for c in by_index] == \
        [None if math.isnan(x) else x for x in one.metrics.sharpe_ratio]
    pbo = statistics.pbo_from_blocks(np.asarray(one.blocks.bars), np.asarray(one.blocks.sum).reshape(16, 231),
                                     np.asarray(one.blocks.sum_squares).reshape(16, 231))
    assert (reply.summary.statistics.pbo, reply.summary.statistics.degradation_slope) == (pbo.pbo, pbo.slope)
    assert [s.chosen_combination for s in reply.summary.walk_forward.segments] == [s.chosen_combination for s in one.segments]
    assert [s.out_of_sample for s in reply.summary.walk_forward.segments] == [s.out_of_sample for s in one.segments]


def test_three_random_combinations_run_alone_give_the_sweeps_metrics(optimized, client):
    _, _, combinations, _ = optimized
    doc_parameters = parameters.extract(EXAMPLE)
    for c in random.Random(20261205).sample(combinations, 3):
        schema = parameters.substitute(EXAMPLE, doc_parameters, {v.name: v.value for v in c.values})
        execution = client.execute(schema, PARAMS)
        assert list(client.watch(execution.id))[-1].message.startswith("completed")
        m = client.results(execution.id).result.metrics
        assert (m.trades, m.open_trades) == (c.trades, c.open_trades), c.index
        for name in ("total_return", "cagr", "max_drawdown"):
            assert getattr(m, name) == pytest.approx(getattr(c, name), rel=1e-12, abs=1e-12), (c.index, name)
        for name in ("sharpe_ratio", "win_rate"):
            assert m.HasField(name) == c.HasField(name)
            assert getattr(m, name) == pytest.approx(getattr(c, name), rel=1e-12, abs=1e-12), (c.index, name)


def test_the_backtest_is_the_best_combination_and_its_script_says_so(optimized, client):
    execution_id, _, _, reply = optimized
    best = reply.summary.best
    m = client.results(execution_id).result.metrics
    assert m.total_return == pytest.approx(best.total_return, rel=1e-12) and m.trades == best.trades
    code = client.code(execution_id).code
    values = {v.name: v.value for v in best.values}
    assert f"SMA(close, {values['entry.window']:g})" in code
    assert f"{1 - values['entry.drop_pct'] / 100:g} * SMA" in code


def test_walk_forward_segments_never_overlap_and_out_of_sample_uses_only_its_bars(optimized, client):
    _, _, combinations, reply = optimized
    wf = reply.summary.walk_forward
    assert len(wf.segments) == 5
    previous = ""
    for s in wf.segments:
        assert previous < s.in_sample_start <= s.in_sample_end < s.out_of_sample_start <= s.out_of_sample_end
        previous = s.out_of_sample_end
        if s.out_of_sample_equity:
            assert s.out_of_sample_start <= s.out_of_sample_equity[0].time
            assert s.out_of_sample_equity[-1].time <= s.out_of_sample_end
    # a segment's out-of-sample metrics are a standalone backtest of its choice on those dates alone
    s = wf.segments[1]
    chosen = next(c for c in combinations if c.index == s.chosen_combination)
    schema = parameters.substitute(EXAMPLE, parameters.extract(EXAMPLE), {v.name: v.value for v in chosen.values})
    execution = client.execute(schema, backtest_pb2.BacktestParams(
        symbols=["BTC"], start_date=s.out_of_sample_start, end_date=s.out_of_sample_end))
    list(client.watch(execution.id))
    m = client.results(execution.id).result.metrics
    assert (m.total_return, m.trades) == (pytest.approx(s.out_of_sample.total_return, rel=1e-12), s.out_of_sample.trades)
    # the stitched curve: each part rescaled to start where the previous one ended
    growth = math.prod(g.out_of_sample_equity[-1].value / 10_000 for g in wf.segments if g.out_of_sample_equity)
    assert wf.out_of_sample.total_return == pytest.approx((growth - 1) * 100, rel=1e-12)
    assert [p.time for p in wf.out_of_sample_equity] == [p.time for g in wf.segments for p in g.out_of_sample_equity]


def test_psr_and_dsr_follow_the_papers_formulas_on_the_best_combinations_returns(optimized, client):
    """Bailey and López de Prado: PSR = Phi((SR - SR*) sqrt(T-1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)) with the raw
    kurtosis g4; the DSR's SR* = sqrt(V) ((1 - gamma) Z(1 - 1/N) + gamma Z(1 - 1/(N e))), V the variance of the
    trials' Sharpe ratios. Written out here with pandas' moments, not our statistics module."""
    execution_id, _, combinations, reply = optimized
    st = reply.summary.statistics
    equity = [10_000.0] + [p.value for p in client.results(execution_id).result.equity]
    r = pd.Series(equity).pct_change().dropna()
    sr, skew, kurt, t = r.mean() / r.std(), r.skew(), r.kurt() + 3, len(r)

    def psr(benchmark: float) -> float:
        return stats.norm.cdf((sr - benchmark) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr ** 2))

    trials = 231  # the ledger holds this execution's grid only when this test runs first in the module
    per_bar = np.array([c.sharpe_ratio for c in combinations if c.HasField("sharpe_ratio")]) / math.sqrt(365)
    gamma = 0.5772156649015329
    sr0 = math.sqrt(per_bar.var(ddof=1)) * ((1 - gamma) * stats.norm.ppf(1 - 1 / trials)
                                             + gamma * stats.norm.ppf(1 - 1 / (trials * math.e)))
    assert st.trials == trials and st.trials_in_this_execution == 231
    assert st.psr == pytest.approx(psr(0.0), rel=1e-9)
    assert st.dsr == pytest.approx(psr(sr0), rel=1e-9)
    assert st.deflated_benchmark == pytest.approx(sr0 * math.sqrt(365), rel=1e-9)
    assert st.significant == (st.dsr >= 0.95)
    assert st.dsr_verdict == f"DSR {st.dsr:.2f} after 231 trials: {'significant' if st.significant else 'not significant'} at 95%"
    assert st.pbo_splits == 12_870 and 0 <= st.pbo <= 1


def test_the_ledger_counts_trials_across_executions_once_each(optimized, client):
    # drop_pct 8 was in the first grid, 9 was not: 33 of these 66 combinations are new trials of the family
    execution = client.optimize(EXAMPLE, PARAMS, [R(name="entry.window", start=10, stop=60, step=5),
                                                  R(name="entry.drop_pct", values=[8, 9]), R(name="tp.target_pct", values=[4, 7, 10])])
    assert list(client.watch(execution.id))[-1].message.startswith("completed")
    st = client.optimization(execution.id).summary.statistics
    assert (st.trials, st.trials_in_this_execution) == (231 + 33, 66)
    assert "after 264 trials" in st.dsr_verdict
    # another data window is another family: its ledger starts from zero
    other = client.optimize(EXAMPLE, backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2021-01-01", end_date="2024-12-31"),
                            [R(name="entry.window", values=[20, 40])])
    list(client.watch(other.id))
    assert client.optimization(other.id).summary.statistics.trials == 2


def test_cancel_mid_sweep_stops_it_and_keeps_the_finished_jobs_in_the_ledger(research_stack, client):
    params = backtest_pb2.BacktestParams(symbols=["ETH"], start_date="2019-01-01", end_date="2024-12-31")
    execution = client.optimize(EXAMPLE, params, [R(name="entry.window", start=10, stop=60, step=5),
                                                  R(name="entry.drop_pct", start=2, stop=8, step=1),
                                                  R(name="tp.target_pct", values=[4, 7, 10])])
    done = 0
    for event in client.watch(execution.id):
        if event.log.source == "optimizer" and event.log.message.startswith("sweep: "):
            done = int(event.log.message.split()[1].split("/")[0])
            client.cancel(execution.id)
            break
    events = list(client.watch(execution.id))
    assert events[-1].status == pb.EXECUTION_STATUS_CANCELLED
    progress = [e.log.message for e in events if e.log.source == "optimizer" and e.log.message.startswith("sweep: ")]
    finished = int(progress[-1].split()[1].split("/")[0])
    assert 0 < done <= finished < 231
    with sqlite3.connect(research_stack["database"]) as db:
        rows = db.execute("SELECT count(*) FROM trial_ledger WHERE execution_id = ?", (execution.id,)).fetchone()[0]
    assert rows == finished
    with pytest.raises(ClientError, match="FAILED_PRECONDITION"):
        client.optimization(execution.id)


def test_a_retry_with_the_same_request_id_is_the_same_optimization(client):
    ranges = [R(name="entry.window", values=[20, 30])]
    first = client.optimize(EXAMPLE, PARAMS, ranges, request_id="optimize-once")
    again = client.optimize(EXAMPLE, PARAMS, ranges, request_id="optimize-once")
    assert again.id == first.id
    with pytest.raises(ClientError, match="ALREADY_EXISTS"):
        client.optimize(EXAMPLE, PARAMS, [R(name="entry.window", values=[25])], request_id="optimize-once")
    with pytest.raises(ClientError, match="ALREADY_EXISTS"):  # the same id for a backtest is another request
        client.execute(EXAMPLE, PARAMS, request_id="optimize-once")
    list(client.watch(first.id))


@pytest.mark.parametrize("ranges, options, params, field, words", [
    ([R(name="entry.windw", values=[10])], {}, PARAMS, "ranges[0].name",
     "valid parameters: entry.drop_pct, entry.window, tp.target_pct, sl.stop_pct"),
    ([R(name="entry.window", start=60, stop=10, step=5)], {}, PARAMS, "ranges[0].stop", "reversed"),
    ([R(name="entry.window", values=[])], {}, PARAMS, "ranges[0].step", "step must be positive"),
    ([R(name="entry.drop_pct", values=[5, 120])], {}, PARAMS, "ranges[0].values", "outside its valid range"),
    ([R(name="entry.window", start=1, stop=5000, step=1), R(name="tp.target_pct", start=1, stop=100, step=1)], {}, PARAMS,
     "ranges", "500,000 combinations is more than the cap of 200,000"),
    ([R(name="entry.window", values=[200])], {"walk_forward_segments": 20}, PARAMS, "walk_forward_segments", "warm up"),
    ([R(name="entry.window", values=[20])], {"objective": "profit"}, PARAMS, "objective", "unknown objective 'profit'"),
    ([], {}, PARAMS, "ranges", "at least one parameter range"),
    ([R(name="entry.window", values=[20])], {"max_drawdown": -5}, PARAMS, "max_drawdown", "positive"),
    ([R(name="entry.window", values=[20])], {}, backtest_pb2.BacktestParams(symbols=["BTC", "ETH"]), "params.symbols",
     "one symbol"),
])
def test_bad_input_is_invalid_argument_naming_the_field_and_stores_nothing(client, ranges, options, params, field, words):
    before = len(client.list(page_size=500).executions)
    with pytest.raises(ClientError) as err:
        client.optimize(EXAMPLE, params, ranges, **options)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT, err.value
    violations = dict(bad_request(err.value.exc))
    assert field in violations and words in violations[field], violations
    assert len(client.list(page_size=500).executions) == before


def test_the_report_shows_the_heatmap_the_walk_forward_table_and_the_verdicts(optimized, research_stack, tmp_path):
    execution_id = optimized[0]
    proc = cli(research_stack["orchestrator"].address, "report", execution_id, "--html", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text()
    for words in ("Optimization report", 'id="stratexec-heatmap"', 'id="stratexec-walk-forward"',
                  "Deflated Sharpe Ratio", "Probability of Backtest Overfitting", "Chosen in sample", "after 231 trials"):
        assert words in page, words
    assert page.count("plotly.js v") == 1  # embedded once, before the first figure
    assert page.index("plotly.js v") < page.index('id="stratexec-heatmap"')


def test_a_backtest_has_no_optimization_results_and_a_heatmap_takes_swept_parameters_only(optimized, client):
    backtest = client.execute(EXAMPLE, PARAMS)
    with pytest.raises(ClientError, match="FAILED_PRECONDITION.*not an optimization"):
        client.optimization(backtest.id)
    list(client.watch(backtest.id))
    with pytest.raises(ClientError) as err:
        client.optimization(optimized[0], heatmap_x="sl.stop_pct")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "entry.drop_pct, entry.window, tp.target_pct" in dict(bad_request(err.value.exc))["heatmap_x"]
    flipped = client.optimization(optimized[0], heatmap_x="tp.target_pct", heatmap_y="entry.drop_pct").heatmap
    assert (list(flipped.x_values), list(flipped.y_values)) == ([4, 7, 10], [2, 3, 4, 5, 6, 7, 8])


def test_explain_lists_the_parameters_optimize_takes(research_stack):
    proc = cli(research_stack["orchestrator"].address, "explain", str(STRATEGY))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    listed = lines[lines.index("Parameters (stratexec optimize --param NAME=START:STOP:STEP or NAME=V1,V2,...):") + 1:]
    assert [line.split()[:2] for line in listed[:4]] == [["entry.drop_pct", "5"], ["entry.window", "20"],
                                                        ["tp.target_pct", "7"], ["sl.stop_pct", "5"]]
