"""Configuration of the codegen service, from the environment."""
from __future__ import annotations

import dataclasses

from services.common.config import env_int, env_str


@dataclasses.dataclass(frozen=True)
class CodegenConfig:
    host: str = "localhost"  # CODEGEN_HOST: loopback unless set; off loopback it needs STRATEXEC_INTERNAL_TOKEN
    port: int = 50052
    log_level: str = "INFO"
    grace_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> "CodegenConfig":
        return cls(
            host=env_str("CODEGEN_HOST", cls.host),
            port=env_int("CODEGEN_PORT", cls.port),
            log_level=env_str("CODEGEN_LOG_LEVEL", env_str("LOG_LEVEL", cls.log_level)),
        )
