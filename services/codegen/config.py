"""Configuration of the codegen service (pydantic-settings), from CODEGEN_* variables and LOG_LEVEL."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.request_limits import MAX_SCHEMA_REQUEST_BYTES
from services.common.settings import ServiceSettings


class CodegenConfig(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CODEGEN_")

    host: str = "localhost"  # CODEGEN_HOST: loopback unless set; off loopback it needs STRATEXEC_INTERNAL_TOKEN
    port: int = Field(50052, ge=0, le=65535)
    grace_seconds: float = Field(5.0, ge=0)
    max_request_bytes: int = Field(MAX_SCHEMA_REQUEST_BYTES, ge=1)  # same limit as the orchestrator's
    max_rule_text_chars: int = Field(8000, ge=1)  # all rules of a schema together (a few hundred is normal)
    compile_timeout_s: float = Field(10.0, gt=0)  # one compile, also bounded by the caller's deadline
