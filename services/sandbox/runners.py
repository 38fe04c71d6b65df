"""Choosing the runner for SANDBOX_MODE: a fresh interpreter per run, or the warm pool.

Its own module so that pool.py (which builds on runner.py) and runner.py do
not import each other."""
from __future__ import annotations

from services.sandbox.config import SandboxConfig
from services.sandbox.isolation import IsolationPlan
from services.sandbox.pool import PoolRunner
from services.sandbox.runner import FreshRunner, Runner


def make_runner(config: SandboxConfig, plan: IsolationPlan) -> Runner:
    if config.mode == "fresh":
        return FreshRunner(config, plan)
    if config.mode == "pool":
        return PoolRunner(config, plan)
    raise SystemExit(f"SANDBOX_MODE must be fresh or pool, not {config.mode!r}")
