"""Two sandboxes on one host with the same scratch setting never share a directory."""
from __future__ import annotations

import asyncio
import pathlib

import pytest

from services.sandbox import isolation
from services.sandbox.config import SandboxConfig
from services.sandbox.market_data import BundledProvider, DataRequest, prepare
from services.sandbox.runner import RunJob
from services.sandbox.runners import make_runner

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Sleeps, then says whether its own sealed input is still there.
IN_FLIGHT = """
import os, sys, time
time.sleep(6)
print("INPUT_INTACT", os.path.exists(sys.argv[0]) and os.path.isdir(os.path.dirname(sys.argv[0]) + "/data"), flush=True)
"""


@pytest.mark.slow
def test_a_second_instance_leaves_the_first_ones_in_flight_run_alone(tmp_path):
    data = prepare(BundledProvider(ROOT / "data" / "ohlcv"), DataRequest(("BTC-USD",), "2024-01-01", "2024-01-31"))
    config = SandboxConfig.from_env().model_copy(update=dict(scratch_dir=str(tmp_path / "scratch"), pool_size=1,
                                 mode="pool", recycle_after=1000))
    loop = asyncio.new_event_loop()
    plans = [isolation.probe(config), isolation.probe(config)]
    first, second = (make_runner(config, plan) for plan in plans)
    try:
        loop.run_until_complete(first.start())
        run = loop.create_task(first.run(RunJob(code=IN_FLIGHT, data=data, timeout_seconds=60)))

        async def started():
            while not list((tmp_path / "scratch").rglob("run-*")):
                await asyncio.sleep(0.05)
        loop.run_until_complete(asyncio.wait_for(started(), 30))
        loop.run_until_complete(second.start())  # cleans its own stale run directories on start
        out = loop.run_until_complete(run)
        assert "INPUT_INTACT True" in out.logs, out.logs
        assert first.scratch != second.scratch
        assert first.scratch.parent == second.scratch.parent == tmp_path / "scratch"
        assert plans[0].uid_base != plans[1].uid_base or plans[0].uid_for(0) is None
    finally:
        for runner in (first, second):
            loop.run_until_complete(runner.close())
        loop.close()
        for plan in plans:
            isolation.release_uid_block(plan.uid_base)


def test_the_instance_directory_is_claimed_with_a_lock(tmp_path):
    held = isolation.claim_scratch(tmp_path)
    stale = held.path / "slot-0" / "run-old"
    stale.mkdir(parents=True)
    again = isolation.claim_scratch(tmp_path)
    assert again.path != held.path and stale.exists()
    held.release()
    reused = isolation.claim_scratch(tmp_path)  # a dead instance's directory is reused and emptied
    assert reused.path == held.path and not stale.exists()
    reused.release()
    again.release()


def test_default_scratch_is_under_the_service_data_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SANDBOX_SCRATCH_DIR", raising=False)
    monkeypatch.setenv("STRATEXEC_DATA_DIR", str(tmp_path))
    assert SandboxConfig.from_env().scratch_dir == str(tmp_path / "sandbox" / "scratch")
