"""Scale-out benchmark: executions per second and latency with one and two
orchestrator replicas (on the machine's PostgreSQL) and one and two sandbox
replicas.

    .venv/bin/python benchmarks/scale_bench.py [--executions 24] [--concurrency 8]

Starts codegen and memory once, two sandbox replicas, and for each layout a
fresh PostgreSQL database (like tests/postgres.py: 127.0.0.1:5432, trust
auth, STRATEXEC_TEST_PG_URL to change it) with one or two orchestrators on
it; the orchestrators balance over their sandboxes with client-side
round_robin (SANDBOX_ADDR lists them). Each layout runs the example strategy
``--executions`` times from ``--concurrency`` client threads, submitting to
the orchestrators in turn; latency is ExecuteStrategy to the end of
WatchExecution. Prints one markdown table, the core count beside it.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.e2e_bench import pct  # noqa: E402
from services.stack import start_service, start_stack, wait_serving  # noqa: E402
from stratexec.backtest.v1 import backtest_pb2  # noqa: E402
from stratexec.orchestrator.v1 import execution_pb2  # noqa: E402
from stratexec_cli.client import Client  # noqa: E402
from tests.postgres import fresh_database  # noqa: E402

EXAMPLE = json.loads((ROOT / "examples" / "strategy.json").read_text())
LAYOUTS = [(1, 1), (2, 1), (1, 2), (2, 2)]  # (orchestrators, sandboxes)


def one_execution(address: str) -> tuple[float, bool]:
    client = Client(address)
    params = backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2024-01-01", end_date="2024-12-31")
    t0 = time.perf_counter()
    execution = client.execute(EXAMPLE, params)
    last = list(client.watch(execution.id))[-1]
    return (time.perf_counter() - t0) * 1000, last.status == execution_pb2.EXECUTION_STATUS_COMPLETED


def measure(addresses: list[str], executions: int, concurrency: int) -> dict:
    for address in addresses:  # one warm-up each: first-call costs are not scale
        one_execution(address)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one_execution, [addresses[i % len(addresses)] for i in range(executions)]))
    wall = time.perf_counter() - t0
    times = [ms for ms, ok in results if ok]
    return {"completed": len(times), "per_s": len(times) / wall, "p50": pct(times, 0.5), "p95": pct(times, 0.95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        run_dir = pathlib.Path(tmp)
        backends = start_stack(run_dir, names=["codegen", "memory"])
        started = list(backends.values())
        try:
            sandboxes = [start_service("sandbox", run_dir / f"sandbox-{i}", 0,
                                       {"SANDBOX_SCRATCH_DIR": str(run_dir / f"scratch-{i}")}) for i in range(2)]
            started += sandboxes
            for svc in sandboxes:
                wait_serving(svc.address, 300, svc.proc, svc.log_path)
            for n_orch, n_sandbox in LAYOUTS:
                with fresh_database() as database_url:
                    env = {"CODEGEN_ADDR": backends["codegen"].address, "MEMORY_ADDR": backends["memory"].address,
                           "SANDBOX_ADDR": ",".join(s.address for s in sandboxes[:n_sandbox]),
                           "DATABASE_URL": database_url}
                    orchestrators = [start_service("orchestrator", run_dir / f"o{n_orch}s{n_sandbox}-{i}", 0, env)
                                     for i in range(n_orch)]
                    try:
                        for svc in orchestrators:
                            wait_serving(svc.address, 300, svc.proc, svc.log_path)
                        rows.append((n_orch, n_sandbox, measure([o.address for o in orchestrators],
                                                                 args.executions, args.concurrency)))
                    finally:
                        for svc in orchestrators:
                            svc.stop()
        finally:
            for svc in reversed(started):
                svc.stop()
    print(f"| orchestrators | sandboxes | executions completed | executions/s | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for n_orch, n_sandbox, r in rows:
        print(f"| {n_orch} | {n_sandbox} | {r['completed']}/{args.executions} | {r['per_s']:.2f} | "
              f"{r['p50']:.0f} | {r['p95']:.0f} |")
    print(f"\n{os.cpu_count()} cores; {args.concurrency} concurrent clients; PostgreSQL at 127.0.0.1:5432; "
          "codegen and memory one replica each")


if __name__ == "__main__":
    main()
