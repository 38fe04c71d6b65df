"""Memory service benchmark: AddMemory and SearchMemories latency (p50, p95)
through gRPC against the real service, at 1,000 and 10,000 stored memories.

    .venv/bin/python benchmarks/memory_bench.py [--sizes 1000,10000] [--users 1]

For each size the data directory is first filled in-process (batched
embedding: filling through the API one call at a time would take minutes),
then `python -m services.memory` is started on it and timed from a client
(see --unique: the fill embeds at most 500 distinct texts per size):
``--adds`` AddMemory calls (one message, infer=false) and ``--searches``
SearchMemories calls (limit 5), half plain, half with a metadata filter.
By default one user owns every memory: the worst case, every search scans
all of them. Runs offline in ~2 minutes; prints a table.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import random
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402

from services.stack import start_service, wait_serving  # noqa: E402

INDICATORS = ["RSI(14) below 30", "RSI(2) below 10", "close 5% below the 20-day SMA", "SMA 20/50 crossover",
              "EMA 12/26 crossover", "MACD crosses its signal line", "close below the lower Bollinger Band",
              "20-day Donchian breakout", "ADX above 25", "Stochastic %K crosses %D below 20", "volume 3x average",
              "new 52-week high", "Supertrend flip to long", "Keltner upper band breakout", "CCI crosses -100"]
EXITS = ["take profit 7%, stop loss 5%", "exit on the opposite cross", "trailing stop 3x ATR", "exit after 10 bars",
         "exit at the middle band", "stop loss 8%"]
ASSETS = ["BTC-USD", "ETH-USD", "SOL-USD", "SPY", "QQQ", "AAPL", "MSFT", "TSLA", "NVDA", "GLD", "EURUSD", "XRP-USD"]
TIMEFRAMES = ["1d", "4h", "1h", "15m"]
QUERIES = ["oversold bitcoin entry", "moving average crossover on tech stocks", "breakout strategy on gold",
           "mean reversion with bollinger bands on ether", "trend following with trailing stop",
           "what worked on the S&P 500 ETF", "failed strategies on crypto", "RSI strategies with small drawdown"]


def pattern(rng: random.Random, i: int) -> tuple[str, dict]:
    asset, tf = rng.choice(ASSETS), rng.choice(TIMEFRAMES)
    ret, dd, trades = round(rng.uniform(-40, 120), 1), round(rng.uniform(-60, -2), 1), rng.randint(1, 300)
    text = (f"Entry when {rng.choice(INDICATORS)}; {rng.choice(EXITS)}. {asset} {tf} {rng.randint(2015, 2024)}. "
            f"Completed: total return {ret}%, max drawdown {dd}%, {trades} trades. (#{i})")
    return text, {"kind": "strategy_pattern", "asset": asset, "timeframe": tf, "total_return": ret}


def fill(data_dir: pathlib.Path, users: list[str], upto: int, rng: random.Random, unique: int,
         breakdown: dict[str, list[float]], probes: int = 100) -> float:
    """Bring the store to ``upto`` memories in-process; returns seconds taken."""
    os.environ["MEMORY_DATA_DIR"] = str(data_dir)
    from services.memory.config import MemoryConfig
    from services.memory.store import DirectoryLock, EmbeddedStore

    # the runtime's default threads for the batched fill (the service uses 1)
    config = MemoryConfig.from_env().model_copy(update={"embed_threads": 0})
    lock = DirectoryLock(config.lock_path)
    lock.acquire()
    store = EmbeddedStore(config)
    try:
        store.load()
        have = store.count()
        started = time.monotonic()
        items = [pattern(rng, i) for i in range(have, upto)]
        # Embed at most `unique` texts; later memories reuse those vectors with
        # a little noise. Search cost is brute force over every vector of the
        # user, so it depends on the count, not on the values, and the fill
        # stays ~1 minute on a 2-core CPU instead of several.
        vectors = store.memory.embedding_model.embed_batch([t for t, _ in items[:unique]], "add")
        noise = np.random.default_rng(len(items))
        while len(vectors) < len(items):
            base = np.asarray(vectors[len(vectors) % unique])
            vectors.append((base + noise.normal(scale=0.02, size=base.shape)).tolist())
        for u, user in enumerate(users):
            mine = items[u::len(users)]
            if mine:
                store.bulk_add(user, mine, vectors=vectors[u::len(users)])
        seconds = time.monotonic() - started
        # Where a search's time goes, measured in-process: the query embedding
        # (ONNX Runtime on CPU) and the vector search with a user filter (the index).
        embed, index = [], []
        index_store = store.memory.vector_store
        for i in range(probes):
            t = time.perf_counter()
            vector = store.memory.embedding_model.embed(QUERIES[i % len(QUERIES)], "search")
            embed.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            index_store.search(query="", vectors=vector, top_k=60, filters={"user_id": users[i % len(users)]})
            index.append((time.perf_counter() - t) * 1000)
        breakdown["embed query (in-process)"] = embed
        breakdown["index search (in-process)"] = index
        return seconds
    finally:
        store.close()
        lock.release()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(address: str, users: list[str], adds: int, searches: int, rng: random.Random) -> dict[str, list[float]]:
    from stratexec.memory.v1 import memory_pb2, memory_pb2_grpc

    out: dict[str, list[float]] = {"add": [], "search": [], "search+filter": []}
    with grpc.insecure_channel(address) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        for i in range(5):  # warm the channel and the service
            stub.SearchMemories(memory_pb2.SearchMemoriesRequest(user_id=users[0], query=QUERIES[i]), timeout=30)
        for i in range(adds):
            text, metadata = pattern(rng, 10_000_000 + i)
            meta = struct_pb2.Struct()
            meta.update(metadata)
            request = memory_pb2.AddMemoryRequest(user_id=users[i % len(users)], metadata=meta,
                                                  messages=[memory_pb2.MemoryMessage(role="user", content=text)])
            t = time.perf_counter()
            stub.AddMemory(request, timeout=30)
            out["add"].append((time.perf_counter() - t) * 1000)
        kind = struct_pb2.Struct()
        kind.update({"kind": "strategy_pattern", "asset": ["BTC-USD", "ETH-USD", "SPY"]})
        for i in range(searches):
            filtered = i % 2 == 1
            request = memory_pb2.SearchMemoriesRequest(user_id=users[i % len(users)], query=rng.choice(QUERIES),
                                                       limit=5, filters=kind if filtered else None)
            t = time.perf_counter()
            reply = stub.SearchMemories(request, timeout=30)
            out["search+filter" if filtered else "search"].append((time.perf_counter() - t) * 1000)
            assert reply.memories, "a search over a full store returned nothing"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--users", type=int, default=1, help="memories are spread over this many users")
    parser.add_argument("--adds", type=int, default=100)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--unique", type=int, default=500, help="texts embedded per fill; the rest reuse their vectors")
    parser.add_argument("--data-dir", help="keep the store here (default: a temporary directory)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    users = [f"bench-user-{i}" for i in range(args.users)]
    rng = random.Random(42)
    tmp = tempfile.TemporaryDirectory(prefix="memory-bench-")
    base = pathlib.Path(args.data_dir or tmp.name)
    data_dir = base / "data"
    rows = []
    total = time.monotonic()
    try:
        for size in sizes:
            breakdown: dict[str, list[float]] = {}
            seconds = fill(data_dir, users, size, rng, args.unique, breakdown)
            print(f"filled to {size:,} memories in {seconds:.1f}s (in-process, batched)", flush=True)
            started = time.monotonic()
            svc = start_service("memory", base / f"run-{size}", port=0, env={"MEMORY_DATA_DIR": str(data_dir)})
            try:
                wait_serving(svc.address, 180, svc.proc, svc.log_path)
                print(f"service SERVING on {size:,} memories after {time.monotonic() - started:.1f}s", flush=True)
                results = measure(svc.address, users, args.adds, args.searches, rng)
            finally:
                svc.stop()
            for op, values in {**results, **breakdown}.items():
                rows.append((size, op, len(values), pct(values, 50), pct(values, 95), statistics.fmean(values)))
    finally:
        tmp.cleanup()
    print()
    print(f"memory service over gRPC (embedded mem0 + local Qdrant, all-MiniLM-L6-v2 on CPU; {args.users} user(s))")
    print(f"{'memories':>9} {'operation':<26} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for size, op, n, p50, p95, mean in rows:
        print(f"{size:>9,} {op:<26} {n:>5} {p50:>8.1f} {p95:>8.1f} {mean:>8.1f}")
    print(f"\ntotal {time.monotonic() - total:.0f}s; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(latency is mostly the query embedding on CPU: it grows with contention)")


if __name__ == "__main__":
    main()
