"""Typed configuration of the sandbox service (pydantic-settings), from SANDBOX_* variables.

Fails closed (services.common.settings): SANDBOX_ISOLATION=bwarp, SANDBOX_MODE=fast or
SANDBOX_POOL_SIZE=0 stop the service with a message naming the variable."""
from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.config import default_data_dir, project_root
from services.common.settings import ServiceSettings, Settings, closed_set


def _data(*parts: str) -> str:
    return os.path.join(default_data_dir("sandbox"), *parts)


class Limits(Settings):
    """Resource limits of one run (applied inside the jail before user code), SANDBOX_LIMIT_*."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_LIMIT_")

    cpu_seconds: int = Field(60, ge=1)  # RLIMIT_CPU
    address_space_mb: int = Field(4096, ge=64)  # RLIMIT_AS (numba/LLVM reserve a lot of virtual memory)
    processes: int = Field(32, ge=1)  # RLIMIT_NPROC, per run uid
    file_size_mb: int = Field(64, ge=1)  # RLIMIT_FSIZE
    open_files: int = Field(256, ge=16)  # RLIMIT_NOFILE
    # the result channel is cut (and the run fails) past this
    result_max_bytes: int = Field(32 * 1024 * 1024, ge=1024, validation_alias=AliasChoices("SANDBOX_RESULT_MAX_BYTES"))


class SandboxConfig(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_")

    host: str = "localhost"  # loopback unless set; off loopback it needs STRATEXEC_INTERNAL_TOKEN
    port: int = Field(50053, ge=0, le=65535)
    data_provider: Literal["bundled", "csv", "yfinance"] = "bundled"
    bundled_dir: str = str(project_root() / "data" / "ohlcv")
    csv_dir: str = Field(default_factory=lambda: _data("csv"))  # for the csv provider
    cache_dir: str = Field(default_factory=lambda: _data("cache"))  # yfinance on-disk cache
    cache_ttl_seconds: int = Field(6 * 3600, ge=0)  # yfinance cache freshness
    # each instance claims <scratch>/instance-<k> (lock file) for its runs
    scratch_dir: str = Field(default_factory=lambda: _data("scratch"))
    # compiled kernels of the warm parents, per host, kept across restarts
    numba_cache_dir: str = Field(default_factory=lambda: os.path.join(tempfile.gettempdir(), "stratexec-sandbox-numba"))
    default_timeout_seconds: float = Field(60.0, gt=0)
    max_timeout_seconds: float = Field(600.0, gt=0)
    output_cap_bytes: int = Field(64 * 1024, ge=1024)  # captured stdout+stderr per run
    mode: Literal["pool", "fresh"] = "pool"  # pool: a fresh fork of a warm parent per run; fresh: a new interpreter
    pool_size: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)  # concurrent runs (and warm parents)
    queue_size: int = Field(32, ge=0)  # runs of one caller waiting for a slot; RESOURCE_EXHAUSTED past it
    queue_total: int = Field(-1, ge=-1)  # runs waiting over all callers; -1: max(128, 4 * queue_size)
    recycle_after: int = Field(200, ge=1)  # pool mode: a warm parent is replaced after this many runs
    uid_base: int = Field(61000, ge=1000)  # run uids are uid_base + slot when the service runs as root
    isolation: Literal["auto", "bwrap", "unshare", "none"] = "auto"  # which outer jail to use
    require_layers: str = ""  # comma-separated layers that must be active, or start-up fails
    limits: Limits = Field(default_factory=Limits.from_env)

    @model_validator(mode="after")
    def _queue_total(self):
        if self.queue_total < 0:
            object.__setattr__(self, "queue_total", max(128, 4 * self.queue_size))
        return self

    _closed = field_validator("data_provider", "mode", "isolation", mode="before")(closed_set)

    @field_validator("bundled_dir", "csv_dir", "cache_dir", "scratch_dir", "numba_cache_dir")
    @classmethod
    def _path(cls, value: str) -> str:
        return str(pathlib.Path(value).expanduser().resolve())
