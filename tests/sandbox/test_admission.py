"""Admission per caller: one caller's busy loops neither refuse nor starve another's runs."""
from __future__ import annotations

import asyncio
import pathlib

from services.sandbox import isolation
from services.sandbox.config import SandboxConfig
from services.sandbox.market_data import BundledProvider, DataRequest, prepare
from services.sandbox.runner import FreshRunner, QueueFull, RunJob

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUSY = "while True:\n    pass\n"
QUICK = "print('orchestrator run', flush=True)\n"


def test_a_caller_filling_the_queue_does_not_refuse_or_starve_another(tmp_path):
    data = prepare(BundledProvider(ROOT / "data" / "ohlcv"), DataRequest(("BTC-USD",), "2024-01-01", "2024-01-31"))
    config = SandboxConfig.from_env().model_copy(update=dict(scratch_dir=str(tmp_path / "scratch"), pool_size=1,
                                                             mode="fresh", queue_size=2, queue_total=8))
    plan = isolation.probe(config)
    runner = FreshRunner(config, plan)
    loop = asyncio.new_event_loop()

    async def scenario():
        await runner.start()
        busy = [asyncio.create_task(runner.run(RunJob(code=BUSY, data=data, timeout_seconds=3, caller="direct")))
                for _ in range(3)]  # one runs, two wait: the direct caller's queue is full
        await asyncio.sleep(0.2)
        refused = None
        try:
            await runner.run(RunJob(code=BUSY, data=data, timeout_seconds=3, caller="direct"))
        except QueueFull as exc:
            refused = exc
        ours = asyncio.create_task(runner.run(RunJob(code=QUICK, data=data, timeout_seconds=30, caller="orchestrator")))
        done_order = []
        for task in asyncio.as_completed([ours, *busy]):
            out = await task
            done_order.append("orchestrator" if "orchestrator run" in out.logs else "direct")
        return refused, done_order, await ours

    try:
        refused, order, ours = loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(runner.close())
        loop.close()
        isolation.release_uid_block(plan.uid_base)
    assert refused is not None  # the direct caller is held to its own queue
    assert ours.logs == ["orchestrator run"]
    # after the busy loop that was running and at most one queued run of the other caller, not after all of them
    assert order.index("orchestrator") <= 2 and order[-1] == "direct", order
