"""Sweep benchmark: combinations per second through gRPC (codegen GenerateSweepCode -> sandbox RunSweep,
jailed, warm pool) for the example strategy on 2,148 daily BTC bars (2019-01-01..2024-12-31), a 10,000-combination
walk-forward with 5 segments, the peak memory of one sweep job, backtesting.py's Backtest.optimize on the
1,000-combination grid (same rule: entry at the close when close <= (1 - drop) x SMA(close, window), take profit and
stop loss from the entry close, checked on later bars) and a plain Python loop of single vectorbt runs.

    python benchmarks/sweep_bench.py [--loop-runs 40] [--skip-100k] [--skip-backtesting]

Measures only once every warm parent of the pool is ready (a parent still warming up takes a CPU from the runs).
Prints one markdown table with the load average around each row. Targets (issue 11): >= 1,500 combinations/s
through the service, >= 50x backtesting.py, sandbox peak memory < 2 GiB for 100,000 combinations, 10,000-combination
walk-forward (5 segments) < 30 s.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import grpc
import numpy as np
from google.protobuf import struct_pb2

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.stack import start_stack  # noqa: E402
from stratexec.backtest.v1 import backtest_pb2  # noqa: E402
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc  # noqa: E402
from stratexec.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc  # noqa: E402

EXAMPLE = json.loads((ROOT / "examples" / "strategy.json").read_text())
PARAMS = backtest_pb2.BacktestParams(symbols=["BTC"], benchmark="BTC-USD", start_date="2019-01-01", end_date="2024-12-31",
                                     initial_capital=10000.0, fees=0.001, slippage=0.0005, exposure=1.0)
DATA = ROOT / "data" / "ohlcv"
BACKTESTING_VERSION = "0.6.6"  # pinned in constraints.txt
R = codegen_pb2.ParameterRange
GRIDS = {  # 100 distinct signal columns each; stop and target levels broadcast per column
    1_000: [R(name="entry.window", start=10, stop=55, step=5), R(name="entry.drop_pct", start=1, stop=10, step=1),
            R(name="tp.target_pct", start=2, stop=20, step=2)],
    10_000: [R(name="entry.window", start=10, stop=55, step=5), R(name="entry.drop_pct", start=1, stop=10, step=1),
             R(name="tp.target_pct", start=1, stop=20, step=1), R(name="sl.stop_pct", start=1, stop=5, step=1)],
    100_000: [R(name="entry.window", start=10, stop=55, step=5), R(name="entry.drop_pct", start=1, stop=10, step=1),
              R(name="tp.target_pct", start=1, stop=50, step=1), R(name="sl.stop_pct", start=1, stop=20, step=1)],
}


def struct(doc: dict) -> struct_pb2.Struct:
    body = struct_pb2.Struct()
    body.update(doc)
    return body


def generate(codegen, ranges, segments: int = 0):
    request = codegen_pb2.GenerateSweepCodeRequest(schema=struct(EXAMPLE), params=PARAMS, ranges=ranges)
    if segments:
        request.walk_forward.segments = segments
    return codegen.GenerateSweepCode(request)


def wait_for_pool(log_path, slots: int, timeout: float = 600.0) -> None:
    """Until every warm parent of the sandbox's pool has said it is ready (the service is SERVING after the first)."""
    deadline = time.monotonic() + timeout
    while pathlib.Path(log_path).read_text(errors="replace").count("warm parent ready") < slots:
        if time.monotonic() > deadline:
            raise SystemExit(f"the sandbox pool did not warm up {slots} parents in {timeout:.0f} s")
        time.sleep(0.5)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(sandbox, generated) -> tuple[float, object]:
    start = time.perf_counter()
    reply = sandbox.RunSweep(sandbox_pb2.RunSweepRequest(code=generated.code, params=PARAMS, combinations=generated.combinations,
                                                         execution_id="bench", timeout_seconds=600), timeout=620)
    seconds = time.perf_counter() - start
    if reply.outcome != sandbox_pb2.RUN_OUTCOME_SUCCEEDED:
        raise SystemExit(f"sweep failed: {reply.error.message}\n" + "\n".join(list(reply.logs)[-20:]))
    return seconds, reply


def peak_memory_mib(code: str) -> float:
    """Peak RSS of the same sweep script as a plain process (the jail adds no memory of its own)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "sweep.py"
        path.write_text(code)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, str(path), "--data", str(DATA)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0


def python_loop(runs: int) -> float:
    """Single vectorbt runs in a Python loop: one from_signals per combination (warm)."""
    import pandas as pd
    import vectorbt as vbt

    from stratexec_runtime import load_prices

    bars = load_prices(str(DATA), ["BTC-USD"], "2019-01-01", "2024-12-31", warmup_bars=200)["BTC-USD"]
    close = bars["close"]

    def one(window, drop, tp):
        entries = (close <= (1 - drop / 100) * close.rolling(window).mean()).loc["2019-01-01":]
        ohlc = bars.loc["2019-01-01":]
        pf = vbt.Portfolio.from_signals(ohlc["close"], entries, pd.Series(False, index=ohlc.index), open=ohlc["open"],
                                        high=ohlc["high"], low=ohlc["low"], price=ohlc["close"], tp_stop=tp / 100, sl_stop=0.05,
                                        stop_entry_price="close", stop_exit_price="stopmarket", direction="longonly",
                                        size=1.0, size_type="percent", init_cash=10000.0, fees=0.001, slippage=0.0005, freq="1D")
        return pf.total_return()

    one(20, 5, 7)  # compile
    start = time.perf_counter()
    for k in range(runs):
        one(10 + k % 10 * 5, 1 + k % 7, 2 + k % 9)
    return runs / (time.perf_counter() - start)


def _dip_strategy():
    """The example strategy as a backtesting.py Strategy (module level: its optimize pickles the class)."""
    global DipBelowSMA
    if "DipBelowSMA" in globals():
        return DipBelowSMA
    import pandas as pd
    from backtesting import Strategy

    class DipBelowSMA(Strategy):
        window, drop, tp, sl = 20, 5.0, 7.0, 5.0
        start = pd.Timestamp("2019-01-01")  # the bars before only warm up the SMA

        def init(self):
            self.sma = self.I(lambda c: pd.Series(c).rolling(int(self.window)).mean().to_numpy(), self.data.Close)

        def next(self):
            if self.data.index[-1] < self.start or self.position:
                return
            close = self.data.Close[-1]
            if close <= (1 - self.drop / 100) * self.sma[-1]:
                self.buy(sl=close * (1 - self.sl / 100), tp=close * (1 + self.tp / 100))

    DipBelowSMA.__qualname__ = "DipBelowSMA"
    return DipBelowSMA


def backtesting_optimize(grid: dict[str, list[float]]) -> tuple[float, int, dict]:
    """backtesting.py's Backtest.optimize over the grid (its own process pool): (seconds, combinations,
    the stats of one combination, for a sanity check against the sweep).

    The same rule and execution as the generated script, as far as backtesting.py can say it: orders fill
    at the signal bar's close (trade_on_close), take profit and stop loss at fixed levels from the entry close,
    checked from the next bar on (the stop first when both are inside a bar), fees 0.1% as commission and
    the 0.05% slippage as spread, all the cash invested (FractionalBacktest: BTC in satoshis)."""
    from backtesting.lib import FractionalBacktest

    from stratexec_runtime import load_prices

    bars = load_prices(str(DATA), ["BTC-USD"], "2019-01-01", "2024-12-31", warmup_bars=60)["BTC-USD"]
    data = bars.rename(columns=str.title)[["Open", "High", "Low", "Close", "Volume"]]
    bt = FractionalBacktest(data, _dip_strategy(), cash=10000.0, commission=0.001, spread=0.0005, trade_on_close=True,
                            finalize_trades=False)
    combinations = 1
    for values in grid.values():
        combinations *= len(values)
    warnings.filterwarnings("ignore", message="Some trades remain open")
    start = time.perf_counter()
    bt.optimize(maximize="Sharpe Ratio", **grid)
    seconds = time.perf_counter() - start
    one = bt.run(**{name: values[len(values) // 2] for name, values in grid.items()})
    return seconds, combinations, {"params": {name: values[len(values) // 2] for name, values in grid.items()},
                                   "trades": int(one["# Trades"]), "return": float(one["Return [%]"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop-runs", type=int, default=40)
    parser.add_argument("--skip-100k", action="store_true")
    parser.add_argument("--skip-backtesting", action="store_true")
    args = parser.parse_args()
    rows = []
    sweep_1k = None
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(pathlib.Path(tmp), names=["codegen", "sandbox"])
        try:
            wait_for_pool(stack["sandbox"].log_path, os.cpu_count() or 1)
            with grpc.insecure_channel(stack["codegen"].address) as c1, grpc.insecure_channel(stack["sandbox"].address) as c2:
                codegen, sandbox = codegen_pb2_grpc.CodegenServiceStub(c1), sandbox_pb2_grpc.SandboxServiceStub(c2)
                run(sandbox, generate(codegen, GRIDS[1_000]))  # a first job: the pool's children are warm from then on
                for n in (1_000, 10_000):
                    before = load()
                    start = time.perf_counter()
                    generated = generate(codegen, GRIDS[n])
                    gen_s = time.perf_counter() - start
                    seconds, reply = run(sandbox, generated)
                    rate = n / (seconds + gen_s)
                    if n == 1_000:
                        sweep_1k = (rate, generated, reply.result)
                    rows.append((f"sweep {n:,} combinations through gRPC", f"{rate:,.0f} combos/s",
                                 f"generate {gen_s:.2f} s + run {seconds:.2f} s", ">= 1,500 combos/s",
                                 "met" if rate >= 1500 else "not met", f"{before} -> {load()}"))
                    print(rows[-1], flush=True)
                before = load()
                generated = generate(codegen, GRIDS[10_000], segments=5)
                seconds, _ = run(sandbox, generated)
                rows.append(("walk-forward 10,000 combinations, 5 segments", f"{seconds:.1f} s", "run (in-sample sweeps + "
                             "out-of-sample runs)", "< 30 s", "met" if seconds < 30 else "not met", f"{before} -> {load()}"))
                print(rows[-1], flush=True)
                if not args.skip_100k:
                    # One job's result (every metric plus 16 x 2 block sums per combination, as JSON) passes the
                    # sandbox's 32 MiB result cap past roughly 40,000 combinations, so 100,000 run as the
                    # orchestrator runs them: jobs of at most 10,000 (ORCHESTRATOR_SWEEP_CHUNK_COMBINATIONS),
                    # here one per pair of sl.stop_pct values, one after another.
                    before = load()
                    start = time.perf_counter()
                    for first in range(1, 21, 2):
                        part = GRIDS[100_000][:3] + [R(name="sl.stop_pct", start=first, stop=first + 1, step=1)]
                        run(sandbox, generate(codegen, part))
                    seconds = time.perf_counter() - start
                    rows.append(("sweep 100,000 combinations through gRPC, 10 jobs of 10,000", f"{100_000 / seconds:,.0f} combos/s",
                                 f"generate + run {seconds:.1f} s", "(no target)", "", f"{before} -> {load()}"))
                    print(rows[-1], flush=True)
                    big = generate(codegen, GRIDS[100_000])
                    before = load()
                    peak = peak_memory_mib(big.code)
                    rows.append(("peak memory of the 100,000-combination job", f"{peak:,.0f} MiB",
                                 "the same script as a plain process (max RSS, imports included)", "< 2,048 MiB",
                                 "met" if peak < 2048 else "not met", f"{before} -> {load()}"))
                    print(rows[-1], flush=True)
        finally:
            for svc in reversed(list(stack.values())):
                svc.stop()
    before = load()
    rows.append(("plain Python loop of single vectorbt runs", f"{python_loop(args.loop_runs):,.1f} combos/s",
                 f"{args.loop_runs} runs, warm", "(comparison)", "", f"{before} -> {load()}"))
    if not args.skip_backtesting:
        rate_1k, generated, result = sweep_1k
        grid = {"drop": [], "window": [], "tp": []}
        names = {"entry.drop_pct": "drop", "entry.window": "window", "tp.target_pct": "tp"}
        for parameter in generated.parameters:
            grid[names[parameter.name]] = [float(v) if names[parameter.name] != "window" else int(v) for v in parameter.values]
        before = load()
        seconds, combinations, one = backtesting_optimize(grid)
        bt_rate = combinations / seconds
        rows.append((f"backtesting.py {BACKTESTING_VERSION} Backtest.optimize, the same {combinations:,} combinations",
                     f"{bt_rate:,.1f} combos/s", f"{seconds:.1f} s (its own process pool)", "(baseline)", "", f"{before} -> {load()}"))
        rows.append(("sweep 1,000 through gRPC vs backtesting.py optimize", f"{rate_1k / bt_rate:,.0f}x", "combos/s ratio",
                     ">= 50x", "met" if rate_1k / bt_rate >= 50 else "not met", ""))
        # Sanity: the same combination in both (the execution models differ in details: spread vs slippage).
        shape = [len(p.values) for p in generated.parameters]
        position = [list(p.values).index(one["params"][names[p.name]]) for p in generated.parameters]
        index = int(np.ravel_multi_index(position, shape))
        print(f"check {one['params']}: backtesting.py {one['trades']} trades, {one['return']:.2f}% return; "
              f"sweep {result.metrics.trades[index]} trades, {result.metrics.total_return[index]:.2f}% return\n")
    print(f"machine: {os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}; load average (1/5/15 min) "
          f"before -> after each row\n")
    print("| measurement | result | detail | target | | load |\n|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
