"""End-to-end benchmark: from ExecuteStrategy to the end of WatchExecution,
through the Python client and through grpcurl.

    .venv/bin/python benchmarks/e2e_bench.py [--runs 50] [--grpcurl-runs 50] [--warmup 3]

Starts its own stack (the four services on free ports, services/stack.py,
SQLite, the offline planner), runs the example strategy on BTC 2024 one
execution at a time, and prints one markdown table:
  - p50 and p95 of the whole (submit + stream to its end), per path;
  - the time per stage, from the event log's timestamps (queued -> analyzing
    -> generating_code -> executing -> completed);
  - the time per RPC: ExecuteStrategy as the client sees it, and each agent
    tool's call (its gRPC call to codegen, memory or sandbox), from the
    agent-step events' duration_ms.
Targets (issue 15): p50 <= 150 ms through the Python client, <= 300 ms through grpcurl.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.stack import start_stack  # noqa: E402
from stratexec.backtest.v1 import backtest_pb2  # noqa: E402
from stratexec.orchestrator.v1 import execution_pb2  # noqa: E402
from stratexec_cli.client import Client  # noqa: E402

EXAMPLE = json.loads((ROOT / "examples" / "strategy.json").read_text())
PARAMS = {"symbols": ["BTC"], "start_date": "2024-01-01", "end_date": "2024-12-31"}
GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")
STAGES = ["queued", "analyzing", "generating_code", "executing"]
S = execution_pb2


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


class Sample:
    """One execution's timings (milliseconds)."""

    def __init__(self):
        self.total = 0.0
        self.submit = 0.0
        self.stages: dict[str, float] = {}
        self.tools: dict[str, float] = collections.defaultdict(float)


def _event_ms(event) -> float:
    return event.time.seconds * 1000 + event.time.nanos / 1e6


def _fill_from_events(sample: Sample, events) -> None:
    """Stage times from the status-change timestamps, tool times from the agent steps."""
    changes = [e for e in events if e.type == S.EVENT_TYPE_STATUS_CHANGED]
    if changes[-1].status != S.EXECUTION_STATUS_COMPLETED:
        raise RuntimeError(f"execution ended {S.ExecutionStatus.Name(changes[-1].status)}: {changes[-1].message}")
    for a, b in zip(changes, changes[1:]):
        name = S.ExecutionStatus.Name(a.status).removeprefix("EXECUTION_STATUS_").lower()
        sample.stages[name] = sample.stages.get(name, 0.0) + _event_ms(b) - _event_ms(a)
    for e in events:
        if e.type == S.EVENT_TYPE_AGENT_STEP and e.agent_step.tool:
            sample.tools[e.agent_step.tool] += e.agent_step.duration_ms


def run_python(client: Client) -> Sample:
    sample = Sample()
    params = backtest_pb2.BacktestParams(**PARAMS)
    t0 = time.perf_counter()
    execution = client.execute(EXAMPLE, params)
    sample.submit = (time.perf_counter() - t0) * 1000
    events = list(client.watch(execution.id))
    sample.total = (time.perf_counter() - t0) * 1000
    _fill_from_events(sample, events)
    return sample


def _grpcurl(address: str, method: str, body: dict) -> str:
    proc = subprocess.run([GRPCURL, "-plaintext", "-d", json.dumps(body), address,
                           f"stratexec.orchestrator.v1.ExecutionService/{method}"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return proc.stdout


def run_grpcurl(address: str, client: Client) -> Sample:
    sample = Sample()
    t0 = time.perf_counter()
    started = json.loads(_grpcurl(address, "ExecuteStrategy", {"schema": EXAMPLE, "params": PARAMS}))
    sample.submit = (time.perf_counter() - t0) * 1000
    _grpcurl(address, "WatchExecution", {"execution_id": started["execution"]["id"]})
    sample.total = (time.perf_counter() - t0) * 1000
    _fill_from_events(sample, list(client.watch(started["execution"]["id"])))  # the same events, as protos
    return sample


def grpcurl_process_ms(address: str, n: int = 10) -> float:
    """What one grpcurl process costs by itself (a health check)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([GRPCURL, "-plaintext", address, "grpc.health.v1.Health/Check"], capture_output=True, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def table(results: dict[str, list[Sample]], grpcurl_ms: float) -> str:
    paths = list(results)
    head = "| measure | " + " | ".join(f"{p} p50 | {p} p95" for p in paths) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(paths))]

    def row(label: str, pick) -> None:
        cells = []
        for p in paths:
            values = [pick(s) for s in results[p]]
            values = [v for v in values if v is not None]
            cells += [f"{pct(values, 0.5):.1f}", f"{pct(values, 0.95):.1f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("**ExecuteStrategy -> end of WatchExecution (ms)**", lambda s: s.total)
    row("RPC ExecuteStrategy (submit, ms)", lambda s: s.submit)
    for stage in STAGES:
        row(f"stage {stage} (ms)", lambda s, stage=stage: s.stages.get(stage))
    tools = sorted({t for p in paths for s in results[p] for t in s.tools})
    for tool in tools:
        row(f"tool RPC {tool} (ms)", lambda s, tool=tool: s.tools.get(tool))
    row("stream after the last stage (ms)", lambda s: s.total - s.submit - sum(s.stages.values()))
    lines.append(f"\nruns: {', '.join(f'{p} {len(results[p])}' for p in paths)}; one grpcurl process "
                 f"(health check) costs {grpcurl_ms:.0f} ms p50; {os.cpu_count()} cores")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--grpcurl-runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        stack = start_stack(pathlib.Path(tmp))
        try:
            address = stack["orchestrator"].address
            client = Client(address)
            failures: list[str] = []

            def measured(run, n: int) -> list[Sample]:
                samples = []
                for _ in range(n):
                    try:
                        samples.append(run())
                    except RuntimeError as exc:  # a failed execution is counted and reported, not timed
                        failures.append(str(exc).splitlines()[0])
                return samples

            measured(lambda: run_python(client), args.warmup)
            del failures[:]  # warm-up runs are neither timed nor counted
            results = {"python": measured(lambda: run_python(client), args.runs)}
            if args.grpcurl_runs:
                results["grpcurl"] = measured(lambda: run_grpcurl(address, client), args.grpcurl_runs)
            print(table(results, grpcurl_process_ms(address)))
            print(f"failed executions (not timed): {len(failures)}" + "".join(f"\n  {f}" for f in failures))
        finally:
            for svc in reversed(list(stack.values())):
                svc.stop()


if __name__ == "__main__":
    main()
