"""Sandbox benchmark: ExecuteCode of the example strategy through gRPC,
warm pool against fresh-subprocess mode.

    .venv/bin/python benchmarks/sandbox_bench.py [--warm-runs 60] [--cold-runs 8] [--quick]

Starts two real sandbox servers on free ports (SANDBOX_MODE=pool and
SANDBOX_MODE=fresh, the same isolation), then measures:
  - p50 and p95 latency of sequential calls, per mode, and the warm/cold ratio;
  - throughput (runs/s) with 1, 4 and 16 concurrent clients;
  - the memory of the idle pool (PSS of the service and its warm parents).
Prints one table (markdown). Targets (issue 5): warm p50 <= 80 ms, >= 50x
faster than the fresh subprocess.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import statistics
import sys
import tempfile
import time

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.stack import start_service, wait_serving  # noqa: E402
from stratexec.backtest.v1 import backtest_pb2  # noqa: E402
from stratexec.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc  # noqa: E402
from tests.sandbox.scripts import EXAMPLE  # noqa: E402

PARAMS = backtest_pb2.BacktestParams(
    symbols=["BTC-USD"], benchmark="BTC-USD", timeframe="1d", start_date="2024-01-01", end_date="2024-12-31",
    initial_capital=10000.0, fees=0.001, slippage=0.0005, exposure=1.0,
)


def metadata():
    token = os.environ.get("STRATEXEC_INTERNAL_TOKEN")
    return [("authorization", f"Bearer {token}")] if token else None


def call(stub) -> float:
    started = time.perf_counter()
    reply = stub.ExecuteCode(sandbox_pb2.ExecuteCodeRequest(code=EXAMPLE, params=PARAMS, execution_id="bench"),
                             timeout=300, metadata=metadata())
    elapsed = (time.perf_counter() - started) * 1000.0
    if reply.outcome != sandbox_pb2.RUN_OUTCOME_SUCCEEDED:
        raise SystemExit(f"run failed: {reply.error.message}\n" + "\n".join(reply.logs[-10:]))
    return elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def latency(stub, runs: int) -> list[float]:
    call(stub)  # the first call of a server is not part of the steady state
    return [call(stub) for _ in range(runs)]


def throughput(address: str, clients: int, runs_per_client: int) -> float:
    def client() -> int:
        with grpc.insecure_channel(address) as channel:
            stub = sandbox_pb2_grpc.SandboxServiceStub(channel)
            for _ in range(runs_per_client):
                call(stub)
        return runs_per_client

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as executor:
        done = sum(executor.map(lambda _: client(), range(clients)))
    return done / (time.perf_counter() - started)


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def memory_mb(root: int) -> tuple[float, float]:
    """(PSS, RSS) in MiB of a process tree."""
    pss = rss = 0
    for pid in tree_pids(root):
        try:
            for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss / 1024.0, rss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-runs", type=int, default=60)
    parser.add_argument("--cold-runs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test of the benchmark)")
    args = parser.parse_args()
    if args.quick:
        args.warm_runs, args.cold_runs = 10, 2
    pool_size = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        run_dir = pathlib.Path(tmp)
        common = {"SANDBOX_POOL_SIZE": str(pool_size), "SANDBOX_QUEUE_SIZE": "64", "LOG_LEVEL": "WARNING"}
        t0 = time.perf_counter()
        warm = start_service("sandbox", run_dir / "pool", 0, {**common, "SANDBOX_MODE": "pool", "LOG_LEVEL": "INFO",
                                                               "SANDBOX_SCRATCH_DIR": str(run_dir / "pool-scratch")})
        cold = None
        try:
            wait_serving(warm.address, 600, warm.proc, warm.log_path)
            ready_s = time.perf_counter() - t0  # SERVING once the first parent is warm
            deadline = time.monotonic() + 120
            while warm.log_path.read_text().count('"warm parent ready"') < pool_size and time.monotonic() < deadline:
                time.sleep(0.2)  # the other parents warm up behind it
            all_warm_s = time.perf_counter() - t0
            idle_pss, idle_rss = memory_mb(warm.proc.pid)
            cold = start_service("sandbox", run_dir / "fresh", 0, {**common, "SANDBOX_MODE": "fresh",
                                                                    "SANDBOX_SCRATCH_DIR": str(run_dir / "fresh-scratch")})
            wait_serving(cold.address, 120, cold.proc, cold.log_path)
            with grpc.insecure_channel(warm.address) as wc, grpc.insecure_channel(cold.address) as cc:
                warm_stub, cold_stub = sandbox_pb2_grpc.SandboxServiceStub(wc), sandbox_pb2_grpc.SandboxServiceStub(cc)
                reply = warm_stub.ExecuteCode(sandbox_pb2.ExecuteCodeRequest(code=EXAMPLE, params=PARAMS), timeout=300,
                                              metadata=metadata())
                print(f"isolation (pool): {', '.join(reply.isolation)}", file=sys.stderr)
                print(f"warm: {args.warm_runs} sequential runs ...", file=sys.stderr)
                warm_lat = latency(warm_stub, args.warm_runs)
                print(f"fresh: {args.cold_runs} sequential runs ...", file=sys.stderr)
                cold_lat = latency(cold_stub, args.cold_runs)
            warm_tp = {}
            for clients in (1, 4, 16):
                print(f"warm throughput, {clients} clients ...", file=sys.stderr)
                warm_tp[clients] = throughput(warm.address, clients, max(2, args.warm_runs // clients))
            cold_tp = {}
            for clients in (1, 4, 16):
                print(f"fresh throughput, {clients} clients ...", file=sys.stderr)
                cold_tp[clients] = throughput(cold.address, clients, 1 if clients > 1 else max(1, args.cold_runs // 2))
            busy_pss, _ = memory_mb(warm.proc.pid)
        finally:
            warm.stop()
            if cold is not None:
                cold.stop()
    w50, w95 = statistics.median(warm_lat), percentile(warm_lat, 95)
    c50, c95 = statistics.median(cold_lat), percentile(cold_lat, 95)
    print(f"\nExecuteCode, example strategy (BTC-USD 2024, 366 daily bars), {os.cpu_count()} CPUs, pool size {pool_size}\n")
    print("| measure | warm pool | fresh subprocess |")
    print("|---|---|---|")
    print(f"| p50 latency | {w50:.1f} ms | {c50:.0f} ms |")
    print(f"| p95 latency | {w95:.1f} ms | {c95:.0f} ms |")
    print(f"| runs measured | {len(warm_lat)} | {len(cold_lat)} |")
    for clients in (1, 4, 16):
        print(f"| throughput, {clients} client{'s' if clients > 1 else ''} | {warm_tp[clients]:.1f} runs/s | {cold_tp[clients]:.2f} runs/s |")
    print(f"| warm/cold ratio (p50) | {c50 / w50:.0f}x faster | |")
    print(f"| idle pool memory | {idle_pss:.0f} MiB PSS ({idle_rss:.0f} MiB RSS), service + {pool_size} warm parents | |")
    print(f"| pool memory after the load | {busy_pss:.0f} MiB PSS | |")
    print(f"| pool start: SERVING / all parents warm | {ready_s:.1f} s / {all_warm_s:.1f} s | |")
    print(f"\ntargets: warm p50 <= 80 ms: {'met' if w50 <= 80 else 'NOT met'}; "
          f">= 50x faster than fresh: {'met' if c50 / w50 >= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
