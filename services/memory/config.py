"""Typed configuration of the memory service (pydantic-settings), read once from MEMORY_* and
LOG_LEVEL; fails closed (services.common.settings)."""
from __future__ import annotations

import pathlib

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.config import default_data_dir
from services.common.settings import ServiceSettings

SERVICE_NAME = "stratexec.memory.v1.MemoryService"
SYSTEM_USER = "system"  # owner of the code templates every user may read


class MemoryConfig(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEMORY_")

    host: str = "localhost"  # off loopback it needs STRATEXEC_INTERNAL_TOKEN
    port: int = Field(50054, ge=0, le=65535)
    data_dir: pathlib.Path = Field(default_factory=lambda: pathlib.Path(default_data_dir("memory")))
    collection: str = "stratexec_memories"
    # Limits on requests (violations are INVALID_ARGUMENT).
    max_content_bytes: int = Field(32 * 1024, ge=1)
    max_metadata_bytes: int = Field(16 * 1024, ge=1)
    max_messages: int = Field(32, ge=1)
    max_search_limit: int = Field(100, ge=1)
    max_page_size: int = Field(200, ge=1)
    max_query_bytes: int = Field(4 * 1024, ge=1)
    # Backends: MEM0_API_KEY selects the hosted platform; an LLM key enables infer=True.
    mem0_api_key: str = Field("", validation_alias=AliasChoices("MEM0_API_KEY"), repr=False)
    llm_provider: str = "anthropic"
    llm_api_key: str = Field("", validation_alias=AliasChoices("MEMORY_LLM_API_KEY", "ANTHROPIC_API_KEY"), repr=False)
    llm_model: str = "claude-sonnet-4-6"
    seed_templates: bool = True
    # Intra-op threads of ONNX Runtime for embedding one text (0: its default).
    # 1 by default: calls are serialised on one worker thread anyway, and on
    # 2 busy CPUs more threads gave much worse p95 (measured with torch).
    embed_threads: int = Field(1, ge=0)

    @field_validator("data_dir")
    @classmethod
    def _resolved(cls, value: pathlib.Path) -> pathlib.Path:
        return value.expanduser().resolve()

    @property
    def backend(self) -> str:
        return "platform" if self.mem0_api_key else "embedded"

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_api_key)

    @property
    def qdrant_path(self) -> pathlib.Path:
        return self.data_dir / "qdrant"

    @property
    def history_db_path(self) -> pathlib.Path:
        return self.data_dir / "history.db"

    @property
    def lock_path(self) -> pathlib.Path:
        return self.data_dir / "memory.lock"
