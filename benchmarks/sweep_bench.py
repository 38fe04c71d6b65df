"""Sweep benchmark: combinations per second through gRPC (codegen GenerateSweepCode -> sandbox RunSweep,
jailed, warm pool) for the example strategy on 2,148 daily BTC bars (2019-01-01..2024-12-31), a 10,000-combination
walk-forward with 5 segments, the peak memory of one sweep job, and a plain Python loop of single vectorbt runs.

    python benchmarks/sweep_bench.py [--loop-runs 40]

Prints one markdown table. Targets (issue 11): >= 1,500 combinations/s through the service, >= 50x backtesting.py,
sandbox peak memory < 2 GiB for 100,000 combinations, 10,000-combination walk-forward (5 segments) < 30 s.
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

import grpc
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop-runs", type=int, default=40)
    parser.add_argument("--skip-100k", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(pathlib.Path(tmp), names=["codegen", "sandbox"])
        try:
            with grpc.insecure_channel(stack["codegen"].address) as c1, grpc.insecure_channel(stack["sandbox"].address) as c2:
                codegen, sandbox = codegen_pb2_grpc.CodegenServiceStub(c1), sandbox_pb2_grpc.SandboxServiceStub(c2)
                run(sandbox, generate(codegen, GRIDS[1_000]))  # a first job: the pool's children are warm from then on
                for n in (1_000, 10_000):
                    start = time.perf_counter()
                    generated = generate(codegen, GRIDS[n])
                    gen_s = time.perf_counter() - start
                    seconds, _ = run(sandbox, generated)
                    rows.append((f"sweep {n:,} combinations through gRPC", f"{n / (seconds + gen_s):,.0f} combos/s",
                                 f"generate {gen_s:.2f} s + run {seconds:.2f} s"))
                generated = generate(codegen, GRIDS[10_000], segments=5)
                seconds, _ = run(sandbox, generated)
                rows.append(("walk-forward 10,000 combinations, 5 segments", f"{seconds:.1f} s", "target < 30 s"))
                if not args.skip_100k:
                    big = generate(codegen, GRIDS[100_000])
                    seconds, _ = run(sandbox, big)
                    rows.append(("sweep 100,000 combinations through gRPC", f"{100_000 / seconds:,.0f} combos/s", f"run {seconds:.1f} s"))
                    rows.append(("peak memory of the 100,000-combination job", f"{peak_memory_mib(big.code):,.0f} MiB", "target < 2,048 MiB"))
        finally:
            for svc in reversed(list(stack.values())):
                svc.stop()
    rows.append(("plain Python loop of single vectorbt runs", f"{python_loop(args.loop_runs):,.1f} combos/s", f"{args.loop_runs} runs, warm"))
    rows.append(("backtesting.py optimize", "not measured", "backtesting.py is not installed in this environment"))
    print(f"machine: {os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}\n")
    print("| measurement | result | note |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
