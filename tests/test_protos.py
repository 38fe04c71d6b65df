"""The contracts follow Buf's style guide: `buf lint` (STANDARD and COMMENTS
rules) and `buf format` find nothing, and the generated Python imports as
`from stratexec.<area>.v1 import <name>_pb2`."""
from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
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


PREVIOUS_MAIN = "529f933"  # main before issue 15
# Element -> what changed. Each one is listed in README.md ("Contract changes against 529f933").
ALLOWED_BREAKS = {
    "backtest.v1.Trade.direction": "closed set: string -> enum TradeDirection",
    "orchestrator.v1.LogLine.level": "closed set: string -> enum LogLevel",
    "sandbox.v1.SandboxService.ValidateCode": "removed: nothing called it (codegen.ValidateCode is the policy check)",
    "sandbox.v1.ValidateCodeRequest": "removed with the RPC",
    "sandbox.v1.ValidateCodeResponse": "removed with the RPC",
}
ELEMENT_PATTERNS = [  # buf's messages -> the element they name
    (re.compile(r'name "(\w+)" on message "(\w+)"'), lambda m: f"{m[2]}.{m[1]}"),
    (re.compile(r'Previously present RPC "(\w+)" on service "(\w+)"'), lambda m: f"{m[2]}.{m[1]}"),
    (re.compile(r'Previously present message "(\w+)"'), lambda m: m[1]),
]


def _element(item: dict) -> str:
    package = ".".join(pathlib.PurePosixPath(item["path"]).parts[-3:-1])  # protos/stratexec/<area>/v1/x.proto
    for pattern, name in ELEMENT_PATTERNS:
        match = pattern.search(item["message"])
        if match:
            return f"{package}.{name(match)}"
    return f"{package}: {item['message']}"


def test_buf_breaking_against_the_previous_main_finds_only_the_listed_changes(buf, tmp_path):
    # The previous main's protos, extracted with git (buf's own .git input cannot clone from a worktree)
    archive = subprocess.run(["git", "archive", PREVIOUS_MAIN, "buf.yaml", "protos", "third_party"], cwd=project_root(),
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True, timeout=60)
    proc = subprocess.run([buf, "breaking", "--against", str(tmp_path), "--error-format", "json"],
                          cwd=project_root(), capture_output=True, text=True, timeout=300)
    breaks = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == (100 if breaks else 0), proc.stderr  # buf exits 100 on breaking changes
    found = {_element(item) for item in breaks}
    assert found - set(ALLOWED_BREAKS) == set(), breaks  # nothing else breaks
    assert found == set(ALLOWED_BREAKS)  # and every listed change is real
    readme = (project_root() / "README.md").read_text()
    section = readme.split("### Contract changes against 529f933", 1)[1].split("\n### ", 1)[0]
    for element in ALLOWED_BREAKS:
        assert f"`{element}`" in section, f"{element} is not listed in the README"
