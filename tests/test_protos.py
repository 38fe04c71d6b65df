"""The contracts follow Buf's style guide: `buf lint` (STANDARD and COMMENTS
rules) and `buf format` find nothing, and the generated Python imports as
`from stratexec.<area>.v1 import <name>_pb2`."""
from __future__ import annotations

import importlib
import os
import subprocess

import pytest

from services.common.config import project_root

BUF = project_root() / "node_modules" / ".bin" / "buf"


@pytest.fixture
def buf():
    if not BUF.exists():
        if os.environ.get("CI"):
            pytest.fail("buf is missing: `make test` installs it with npm")
        pytest.skip("buf not installed (npm ci)")
    return str(BUF)


@pytest.mark.parametrize("command", [["lint"], ["format", "--diff", "--exit-code"]])
def test_buf_finds_nothing(buf, command):
    proc = subprocess.run([buf, *command], cwd=project_root(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("area,module", [
    ("backtest", "backtest_pb2"), ("codegen", "codegen_pb2_grpc"), ("sandbox", "sandbox_pb2_grpc"),
    ("memory", "memory_pb2_grpc"), ("orchestrator", "execution_pb2_grpc"), ("orchestrator", "strategy_pb2_grpc"),
])
def test_generated_code_imports_by_package_path(area, module):
    imported = importlib.import_module(f"stratexec.{area}.v1.{module}")
    assert imported.__name__ == f"stratexec.{area}.v1.{module}"
