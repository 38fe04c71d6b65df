"""Orchestrator configuration, read once from the environment."""
from __future__ import annotations

import dataclasses
import os
import pathlib

from services.common.config import default_data_dir, env_float, env_int, env_path, env_str


@dataclasses.dataclass(frozen=True)
class OrchestratorConfig:
    host: str
    port: int
    database_url: str
    codegen_addr: str
    sandbox_addr: str
    memory_addr: str
    workers: int  # executions run at once
    call_timeout_s: float  # deadline of a codegen or memory call
    sandbox_timeout_s: float  # deadline of a sandbox run, including its start
    unavailable_retries: int  # retries of a call that failed with UNAVAILABLE
    max_attempts: int  # starts of one execution across restarts before it fails
    lease_seconds: float  # a running execution whose replica has not renewed it for this long is taken over
    anthropic_api_key: str
    llm_model: str
    default_user: str
    auth_mode: str  # "trusted" (x-user-id from a gateway) or "tokens" (bearer tokens from token_file)
    token_file: str
    trust_remote_user_id: bool  # trusted mode: x-user-id believed from non-loopback peers too (logged warning)
    internal_token: str  # sent to codegen, sandbox and memory when set
    log_level: str

    @classmethod
    def from_env(cls) -> "OrchestratorConfig":
        data_dir: pathlib.Path = env_path("ORCHESTRATOR_DATA_DIR", default_data_dir("orchestrator"))
        return cls(
            host=env_str("ORCHESTRATOR_HOST", "[::]"),
            port=env_int("ORCHESTRATOR_PORT", 50051),
            database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'orchestrator.db'}",
            codegen_addr=env_str("CODEGEN_ADDR", "localhost:50052"),
            sandbox_addr=env_str("SANDBOX_ADDR", "localhost:50053"),
            memory_addr=env_str("MEMORY_ADDR", "localhost:50054"),
            workers=env_int("ORCHESTRATOR_WORKERS", 2),
            call_timeout_s=env_float("ORCHESTRATOR_CALL_TIMEOUT_S", 30.0),
            sandbox_timeout_s=env_float("ORCHESTRATOR_SANDBOX_TIMEOUT_S", 120.0),
            unavailable_retries=env_int("ORCHESTRATOR_UNAVAILABLE_RETRIES", 3),
            max_attempts=env_int("ORCHESTRATOR_MAX_ATTEMPTS", 3),
            lease_seconds=env_float("ORCHESTRATOR_LEASE_S", 15.0),
            anthropic_api_key=env_str("ANTHROPIC_API_KEY", ""),
            llm_model=env_str("STRATEXEC_LLM_MODEL", "anthropic/claude-sonnet-4-6"),
            default_user=env_str("ORCHESTRATOR_DEFAULT_USER", "default"),
            auth_mode=env_str("ORCHESTRATOR_AUTH", "trusted"),
            token_file=env_str("ORCHESTRATOR_TOKEN_FILE", ""),
            trust_remote_user_id=env_str("ORCHESTRATOR_TRUST_REMOTE_USER_ID", "").strip().lower() in ("1", "true", "yes"),
            internal_token=env_str("STRATEXEC_INTERNAL_TOKEN", ""),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
