"""Typed configuration of the memory service, read once from the environment."""
from __future__ import annotations

import dataclasses
import pathlib

from services.common.config import default_data_dir, env_int, env_path, env_str

SERVICE_NAME = "stratexec.memory.v1.MemoryService"
SYSTEM_USER = "system"  # owner of the code templates every user may read


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    host: str
    port: int
    data_dir: pathlib.Path
    collection: str
    log_level: str
    # Limits on requests (violations are INVALID_ARGUMENT).
    max_content_bytes: int
    max_metadata_bytes: int
    max_messages: int
    max_search_limit: int
    max_page_size: int
    max_query_bytes: int
    # Backends: MEM0_API_KEY selects the hosted platform; an LLM key enables infer=True.
    mem0_api_key: str
    llm_provider: str
    llm_api_key: str
    llm_model: str
    seed_templates: bool
    # Intra-op threads of ONNX Runtime for embedding one text (0: its default).
    # 1 by default: calls are serialised on one worker thread anyway, and on
    # 2 busy CPUs more threads gave much worse p95 (measured with torch).
    embed_threads: int

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

    @classmethod
    def from_env(cls) -> "MemoryConfig":
        return cls(
            host=env_str("MEMORY_HOST", "localhost"),  # off loopback it needs STRATEXEC_INTERNAL_TOKEN
            port=env_int("MEMORY_PORT", 50054),
            data_dir=env_path("MEMORY_DATA_DIR", default_data_dir("memory")),
            collection=env_str("MEMORY_COLLECTION", "stratexec_memories"),
            log_level=env_str("MEMORY_LOG_LEVEL", "INFO"),
            max_content_bytes=env_int("MEMORY_MAX_CONTENT_BYTES", 32 * 1024),
            max_metadata_bytes=env_int("MEMORY_MAX_METADATA_BYTES", 16 * 1024),
            max_messages=env_int("MEMORY_MAX_MESSAGES", 32),
            max_search_limit=env_int("MEMORY_MAX_SEARCH_LIMIT", 100),
            max_page_size=env_int("MEMORY_MAX_PAGE_SIZE", 200),
            max_query_bytes=env_int("MEMORY_MAX_QUERY_BYTES", 4 * 1024),
            mem0_api_key=env_str("MEM0_API_KEY", ""),
            llm_provider="anthropic",
            llm_api_key=env_str("MEMORY_LLM_API_KEY", "") or env_str("ANTHROPIC_API_KEY", ""),
            llm_model=env_str("MEMORY_LLM_MODEL", "claude-sonnet-4-6"),
            seed_templates=env_str("MEMORY_SEED_TEMPLATES", "true").lower() not in ("0", "false", "no"),
            embed_threads=env_int("MEMORY_EMBED_THREADS", 1),
        )
