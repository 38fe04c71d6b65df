"""Orchestrator configuration (pydantic-settings), read once from the environment; fails closed
(services.common.settings): ORCHESTRATOR_AUTH=token stops the service naming the variable."""
from __future__ import annotations

import pathlib
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.config import default_data_dir
from services.common.settings import ServiceSettings, closed_set


def env(name: str):
    return AliasChoices(name)


class OrchestratorConfig(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_")

    host: str = "[::]"
    port: int = Field(50051, ge=0, le=65535)
    data_dir: str = Field(default_factory=lambda: default_data_dir("orchestrator"))
    database_url: str = Field("", validation_alias=env("DATABASE_URL"))  # default: sqlite in data_dir
    codegen_addr: str = Field("localhost:50052", validation_alias=env("CODEGEN_ADDR"))
    sandbox_addr: str = Field("localhost:50053", validation_alias=env("SANDBOX_ADDR"))
    memory_addr: str = Field("localhost:50054", validation_alias=env("MEMORY_ADDR"))
    workers: int = Field(2, ge=1)  # executions run at once
    call_timeout_s: float = Field(30.0, gt=0)  # deadline of a codegen or memory call
    sandbox_timeout_s: float = Field(120.0, gt=0)  # deadline of a sandbox run, including its start
    unavailable_retries: int = Field(3, ge=0)  # retries of a call that failed with UNAVAILABLE
    max_attempts: int = Field(3, ge=1)  # starts of one execution across restarts before it fails
    # a running execution whose replica has not renewed it for this long is taken over
    lease_seconds: float = Field(15.0, gt=0, validation_alias=env("ORCHESTRATOR_LEASE_S"))
    outage_budget_s: float = Field(60.0, ge=0)  # total back-off of re-queues after a dependency outage
    user_concurrency: int = Field(0, ge=0)  # executions of one user running at once (0: no limit; round robin anyway)
    user_queue_cap: int = Field(500, ge=1)  # queued executions of one user; past it RESOURCE_EXHAUSTED
    # research mode: combinations an OptimizeStrategy may run, combinations per sandbox job (a chunk: the unit
    # of progress, of cancellation and of spreading over sandbox replicas), and a sweep job's deadline
    sweep_max_combinations: int = Field(200_000, ge=1)
    sweep_chunk_combinations: int = Field(10_000, ge=1)
    sweep_timeout_s: float = Field(600.0, gt=0)
    anthropic_api_key: str = Field("", validation_alias=env("ANTHROPIC_API_KEY"), repr=False)
    llm_model: str = Field("anthropic/claude-sonnet-4-6", validation_alias=env("STRATEXEC_LLM_MODEL"))
    default_user: str = "default"
    # "trusted" (x-user-id from a gateway) or "tokens" (bearer tokens from token_file)
    auth_mode: Literal["trusted", "tokens"] = Field("trusted", validation_alias=env("ORCHESTRATOR_AUTH"))
    token_file: str = ""
    # trusted mode: x-user-id believed from non-loopback peers too (logged warning)
    trust_remote_user_id: bool = False
    # sent to codegen, sandbox and memory when set
    internal_token: str = Field("", validation_alias=env("STRATEXEC_INTERNAL_TOKEN"), repr=False)

    _closed = field_validator("auth_mode", mode="before")(closed_set)

    @model_validator(mode="after")
    def _database(self):
        if not self.database_url:
            path = pathlib.Path(self.data_dir).expanduser().resolve() / "orchestrator.db"
            object.__setattr__(self, "database_url", f"sqlite:///{path}")
        return self
