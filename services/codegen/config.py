"""Configuration of the codegen service, from the environment."""
from __future__ import annotations

import dataclasses

from services.common.config import env_float, env_int, env_str
from services.common.request_limits import MAX_SCHEMA_REQUEST_BYTES


@dataclasses.dataclass(frozen=True)
class CodegenConfig:
    host: str = "localhost"  # CODEGEN_HOST: loopback unless set; off loopback it needs STRATEXEC_INTERNAL_TOKEN
    port: int = 50052
    log_level: str = "INFO"
    grace_seconds: float = 5.0
    max_request_bytes: int = MAX_SCHEMA_REQUEST_BYTES  # CODEGEN_MAX_REQUEST_BYTES: same limit as the orchestrator's
    max_rule_text_chars: int = 8000  # CODEGEN_MAX_RULE_TEXT_CHARS: all rules of a schema together (a few hundred is normal)
    compile_timeout_s: float = 10.0  # CODEGEN_COMPILE_TIMEOUT_S: one compile, also bounded by the caller's deadline

    @classmethod
    def from_env(cls) -> "CodegenConfig":
        return cls(
            host=env_str("CODEGEN_HOST", cls.host),
            port=env_int("CODEGEN_PORT", cls.port),
            log_level=env_str("CODEGEN_LOG_LEVEL", env_str("LOG_LEVEL", cls.log_level)),
            max_request_bytes=env_int("CODEGEN_MAX_REQUEST_BYTES", cls.max_request_bytes),
            max_rule_text_chars=env_int("CODEGEN_MAX_RULE_TEXT_CHARS", cls.max_rule_text_chars),
            compile_timeout_s=env_float("CODEGEN_COMPILE_TIMEOUT_S", cls.compile_timeout_s),
        )
