"""Choosing the runner for SANDBOX_MODE: a fresh interpreter per run, or the warm pool.

Its own module so that pool.py (which builds on runner.py) and runner.py do
not import each other."""
from __future__ import annotations

from services.sandbox.config import SandboxConfig
from services.sandbox.isolation import IsolationPlan
from services.sandbox.pool import PoolRunner
from services.sandbox.runner import FreshRunner, Runner


def make_runner(config: SandboxConfig, plan: IsolationPlan) -> Runner:
    """SandboxConfig.mode is "fresh" or "pool" (anything else stops the service at start)."""
    return FreshRunner(config, plan) if config.mode == "fresh" else PoolRunner(config, plan)
