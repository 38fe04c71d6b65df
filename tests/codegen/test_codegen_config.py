"""CodegenConfig reads the environment."""
from services.codegen.config import CodegenConfig


def test_defaults_and_overrides(monkeypatch):
    for name in ("CODEGEN_HOST", "CODEGEN_PORT", "CODEGEN_LOG_LEVEL", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    assert CodegenConfig.from_env() == CodegenConfig(host="localhost", port=50052, log_level="INFO")
    monkeypatch.setenv("CODEGEN_HOST", "127.0.0.1")
    monkeypatch.setenv("CODEGEN_PORT", "6000")
    monkeypatch.setenv("CODEGEN_LOG_LEVEL", "debug")
    config = CodegenConfig.from_env()
    assert (config.host, config.port, config.log_level) == ("127.0.0.1", 6000, "debug")
