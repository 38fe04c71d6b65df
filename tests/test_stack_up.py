"""`make up` (python -m services.stack up) with one service dead restarts only
that one: the others keep their processes, and the restarted one serves."""
from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from services.common.config import project_root
from services.stack import ORDER, wait_serving

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_cli(command: str, run_dir: pathlib.Path, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "services.stack", command, "--run-dir", str(run_dir)],
                          cwd=project_root(), env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def pids(run_dir: pathlib.Path) -> dict[str, int]:
    return {n: int((run_dir / f"{n}.pid").read_text()) for n in ORDER if (run_dir / f"{n}.pid").exists()}


def test_up_with_one_service_dead_restarts_only_that_one(tmp_path):
    ports = {n: free_port() for n in ORDER}
    env = {**os.environ, **{f"{n.upper()}_PORT": str(p) for n, p in ports.items()},
           "STRATEXEC_DATA_DIR": str(tmp_path / "data")}
    run_dir = tmp_path / "run"
    try:
        stack_cli("up", run_dir, env)
        before = pids(run_dir)
        os.killpg(before["codegen"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while "codegen       running" in stack_cli("status", run_dir, env):
            assert time.monotonic() < deadline, "codegen still running after SIGKILL"
            time.sleep(0.1)

        out = stack_cli("up", run_dir, env)

        after = pids(run_dir)
        assert "starting codegen (" in out and out.count("already running") == 3, out
        assert {n: after[n] == before[n] for n in ORDER} == {"codegen": False, "sandbox": True, "memory": True,
                                                             "orchestrator": True}
        wait_serving(f"localhost:{ports['codegen']}", 60)
    finally:
        stack_cli("down", run_dir, env)
    assert not any((run_dir / f"{n}.pid").exists() for n in ORDER)
