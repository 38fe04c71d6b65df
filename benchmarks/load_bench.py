"""Load: N concurrent executions (200 by default) on the real services, two ways:

1. SQLite, one orchestrator;
2. PostgreSQL (a fresh database), two orchestrator replicas sharing the
   burst, one of them SIGKILLed when half the executions have completed
   (the other takes its executions over once their lease expires).

For each it prints completed/s (over the wall time from the first submit
to the last terminal event), p50/p95 seconds from submit to COMPLETED,
sandbox runs per execution (the sandbox's own "run started" log lines) and
the consistency check of the database (services/orchestrator/consistency.py).

    python benchmarks/load_bench.py [--count 200] [--skip-postgres]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import signal
import statistics
import sys
import tempfile
import threading
import time

import grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from services.orchestrator import consistency, convert  # noqa: E402
from services.stack import start_service, start_stack  # noqa: E402
from stratexec.backtest.v1 import backtest_pb2  # noqa: E402
from stratexec.orchestrator.v1 import execution_pb2, execution_pb2_grpc  # noqa: E402
from stratexec_cli.client import Client  # noqa: E402

EXAMPLE = json.loads((pathlib.Path(__file__).resolve().parents[1] / "examples" / "strategy.json").read_text())
PARAMS = backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2024-01-01", end_date="2024-12-31")
LEASE_S = "5"  # how long a killed replica's executions wait before the other one takes them over


def submit(addresses: list[str], count: int) -> dict[str, float]:
    """Submit ``count`` executions at once, spread over the addresses; execution id -> submit time."""
    request = execution_pb2.ExecuteStrategyRequest(schema=convert.struct(EXAMPLE), params=PARAMS)
    channels = [grpc.insecure_channel(a) for a in addresses]
    stubs = [execution_pb2_grpc.ExecutionServiceStub(c) for c in channels]
    started = time.time()
    futures = [stubs[i % len(stubs)].ExecuteStrategy.future(request, timeout=600) for i in range(count)]
    ids = {f.result().execution.id: started for f in futures}
    for channel in channels:
        channel.close()
    return ids


def finish_times(address: str, ids: dict[str, float], on_half=None) -> dict[str, tuple[int, float]]:
    """Watch each execution to its end: id -> (final status, seconds from submit to the terminal event)."""
    client = Client(address)
    done: dict[str, tuple[int, float]] = {}
    lock = threading.Lock()

    def watch(execution_id: str) -> None:
        last = list(client.watch(execution_id))[-1]
        with lock:
            done[execution_id] = (last.status, last.time.ToNanoseconds() / 1e9 - ids[execution_id])
            if on_half is not None and len(done) == len(ids) // 2:
                on_half()

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(watch, ids))
    return done


def report(name: str, ids: dict[str, float], done: dict, database_url: str, sandbox_log: pathlib.Path) -> dict:
    completed = sorted(seconds for status, seconds in done.values() if status == execution_pb2.EXECUTION_STATUS_COMPLETED)
    wall = max(seconds for _, seconds in done.values())
    runs = consistency.sandbox_runs_from_log(sandbox_log)
    check = consistency.check(database_url, runs)
    q = statistics.quantiles(completed, n=20) if len(completed) > 1 else [float("nan")] * 19
    row = {"setup": name, "executions": len(ids), "completed": len(completed), "completed_per_s": len(completed) / wall,
           "p50_s": statistics.median(completed) if completed else float("nan"), "p95_s": q[18],
           "runs_per_execution": sum(runs[i] for i in ids) / len(ids),
           "consistency": "consistent" if check.ok else f"{len(check.problems)} problems", "attempts": check.attempts}
    for problem in check.problems[:10]:
        print("   ", problem)
    print(f"    {row}", flush=True)
    return row


def bench_sqlite(count: int, root: pathlib.Path) -> dict:
    run_dir = root / "sqlite"
    database = run_dir / "orchestrator.db"
    stack = start_stack(run_dir, env={"DATABASE_URL": f"sqlite:///{database}"})
    try:
        ids = submit([stack["orchestrator"].address], count)
        done = finish_times(stack["orchestrator"].address, ids)
        return report("SQLite, 1 orchestrator", ids, done, f"sqlite:///{database}", stack["sandbox"].log_path)
    finally:
        for svc in reversed(list(stack.values())):
            svc.stop()


def bench_postgres(count: int, root: pathlib.Path) -> dict:
    from tests.postgres import fresh_database

    run_dir = root / "postgres"
    with fresh_database() as database_url:
        backends = start_stack(run_dir, names=["codegen", "sandbox", "memory"])
        env = {f"{n.upper()}_ADDR": backends[n].address for n in backends}
        env.update(DATABASE_URL=database_url, ORCHESTRATOR_LEASE_S=LEASE_S)
        replicas = [start_service("orchestrator", run_dir / n, 0, env) for n in ("a", "b")]
        try:
            ids = submit([r.address for r in replicas], count)

            def kill_a() -> None:
                os.killpg(replicas[0].proc.pid, signal.SIGKILL)
                print(f"    SIGKILLed replica a after {count // 2} executions ended", flush=True)

            done = finish_times(replicas[1].address, ids, on_half=kill_a)
            return report("PostgreSQL, 2 replicas, one SIGKILLed halfway", ids, done, database_url,
                          backends["sandbox"].log_path)
        finally:
            for svc in [*replicas, *backends.values()]:
                svc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        root = pathlib.Path(tmp)
        print(f"{args.count} concurrent executions, {os.cpu_count()} cores", flush=True)
        rows.append(bench_sqlite(args.count, root))
        if not args.skip_postgres:
            rows.append(bench_postgres(args.count, root))
    print()
    print("| setup | completed | completed/s | p50 to COMPLETED (s) | p95 (s) | sandbox runs per execution | attempts | consistency |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['completed']}/{r['executions']} | {r['completed_per_s']:.2f} | {r['p50_s']:.1f} | "
              f"{r['p95_s']:.1f} | {r['runs_per_execution']:.2f} | {r['attempts']} | {r['consistency']} |")


if __name__ == "__main__":
    main()
