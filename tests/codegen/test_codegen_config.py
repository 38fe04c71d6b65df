"""Service settings read the environment once and fail closed (services.common.settings)."""
import pytest

from services.codegen.config import CodegenConfig
from services.sandbox.config import SandboxConfig


def test_defaults_and_overrides(monkeypatch):
    for name in ("CODEGEN_HOST", "CODEGEN_PORT", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    assert CodegenConfig.from_env() == CodegenConfig(host="localhost", port=50052, log_level="INFO")
    monkeypatch.setenv("CODEGEN_HOST", "127.0.0.1")
    monkeypatch.setenv("CODEGEN_PORT", "6000")
    monkeypatch.setenv("LOG_LEVEL", "debug")  # one log-level variable for every service
    config = CodegenConfig.from_env()
    assert (config.host, config.port, config.log_level) == ("127.0.0.1", 6000, "DEBUG")


@pytest.mark.parametrize("name,value,accepted", [
    ("SANDBOX_ISOLATION", "bwarp", "'auto', 'bwrap', 'unshare' or 'none'"),
    ("SANDBOX_MODE", "fast", "'pool' or 'fresh'"),
    ("SANDBOX_DATA_PROVIDER", "bloomberg", "'bundled', 'csv' or 'yfinance'"),
    ("SANDBOX_POOL_SIZE", "0", "greater than or equal to 1"),
    ("SANDBOX_LIMIT_CPU_SECONDS", "lots", "valid integer"),
    ("LOG_LEVEL", "loud", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
])
def test_an_unknown_value_stops_the_service_naming_the_variable(monkeypatch, name, value, accepted):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        SandboxConfig.from_env()
    message = str(stopped.value)
    assert f"{name}=" in message and value.lower() in message.lower() and accepted in message
    assert "not starting" in message


def test_closed_sets_are_case_insensitive_and_empty_means_unset(monkeypatch):
    monkeypatch.setenv("SANDBOX_ISOLATION", " BWRAP ")
    monkeypatch.setenv("SANDBOX_PORT", "")
    config = SandboxConfig.from_env()
    assert (config.isolation, config.port) == ("bwrap", 50053)


def test_the_sandbox_process_refuses_to_start_on_a_misspelt_isolation(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SANDBOX_ISOLATION": "bwarp", "SANDBOX_PORT": "0", "STRATEXEC_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "services.sandbox"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "SANDBOX_ISOLATION='bwarp'" in proc.stderr and "not starting" in proc.stderr
