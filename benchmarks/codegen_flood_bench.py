"""Codegen under a flood of costly requests: does a normal execution stay fast?

Issue 14, item 2: one 245 KB request (24 nodes x 20 rules of 500
characters) used to keep codegen's event loop busy for minutes, and normal
executions failed meanwhile. Now the request size and the total rule text
are checked before any parsing and the compile runs off the event loop
under a deadline. This script starts the four services, then times normal
executions (the example strategy on BTC 2024, submit to COMPLETED) three
ways: alone; while clients send that 245 KB request to codegen without
pause (it is refused); and while they send the costliest request codegen
admits (rule text just under its budget) without pause. It prints p50/p95
and the ratio to the quiet p50 (target: within 2x).

    .venv/bin/python benchmarks/codegen_flood_bench.py [--runs 20] [--flooders 4]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.e2e_bench import EXAMPLE, pct, run_python  # noqa: E402
from services.codegen.config import CodegenConfig  # noqa: E402
from services.orchestrator.convert import struct  # noqa: E402
from services.stack import start_stack  # noqa: E402
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc  # noqa: E402
from stratexec_cli.client import Client  # noqa: E402

RULE = "Buy when the close rises above the 20-day moving average and "


def schema(nodes: int, rules: int, chars: int) -> dict:
    rule = (RULE * (chars // len(RULE) + 1))[:chars]
    return {"nodes": [{"id": f"e{i}", "type": "entry_condition", "meta": {"rules": [rule] * rules}}
                      for i in range(nodes)] + EXAMPLE["nodes"][1:]}


def floods() -> dict[str, dict | None]:
    budget = CodegenConfig().max_rule_text_chars
    return {
        "quiet": None,
        "245 KB request, refused (24 nodes x 20 rules x 500 chars)": schema(24, 20, 500),
        # within the budget, so parsed in full (then refused: the repeated sentence is not one rule)
        f"largest admitted, parsed ({budget // 500 - 1} rules x 500 chars)": schema(1, budget // 500 - 1, 500),
    }


def flood(address: str, doc: dict, stop: threading.Event, counts: list[int]) -> None:
    """AnalyzeStrategy with ``doc`` without pause until ``stop``; counts [answered, refused]."""
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        stub = codegen_pb2_grpc.CodegenServiceStub(channel)
        request = codegen_pb2.AnalyzeStrategyRequest(schema=struct(doc))
        while not stop.is_set():
            try:
                stub.AnalyzeStrategy(request, timeout=30)
                counts[0] += 1
            except grpc.RpcError:
                counts[1] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--flooders", type=int, default=4)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="codegen-flood-") as tmp:
        stack = start_stack(pathlib.Path(tmp))
        try:
            client = Client(stack["orchestrator"].address)
            for _ in range(3):
                run_python(client)  # warm-up
            quiet_p50 = None
            for label, doc in floods().items():
                stop, counts, threads = threading.Event(), [0, 0], []
                if doc is not None:
                    threads = [threading.Thread(target=flood, args=(stack["codegen"].address, doc, stop, counts))
                               for _ in range(args.flooders)]
                    for t in threads:
                        t.start()
                try:
                    totals = [run_python(client).total for _ in range(args.runs)]
                finally:
                    stop.set()
                    for t in threads:
                        t.join()
                p50 = statistics.median(totals)
                quiet_p50 = quiet_p50 or p50
                rows.append(f"| {label} | {p50:.0f} | {pct(totals, 0.95):.0f} | {p50 / quiet_p50:.2f}x | "
                            f"{counts[0]} / {counts[1]} |")
        finally:
            for svc in reversed(list(stack.values())):
                svc.stop()
    print("| codegen meanwhile | execution p50 (ms) | p95 (ms) | p50 vs quiet | flood answered / refused |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{args.runs} executions per row, {args.flooders} flooding clients, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
