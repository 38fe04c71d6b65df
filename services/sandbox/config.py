"""Typed configuration of the sandbox service, from the environment."""
from __future__ import annotations

import dataclasses
import os
import tempfile

from services.common.config import default_data_dir, env_float, env_int, env_path, env_str, project_root


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits of one run (applied inside the jail before user code)."""

    cpu_seconds: int = 60  # RLIMIT_CPU
    address_space_mb: int = 4096  # RLIMIT_AS (numba/LLVM reserve a lot of virtual memory)
    processes: int = 32  # RLIMIT_NPROC, per run uid
    file_size_mb: int = 64  # RLIMIT_FSIZE
    open_files: int = 256  # RLIMIT_NOFILE
    result_max_bytes: int = 32 * 1024 * 1024  # the result channel is cut (and the run fails) past this

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(
            cpu_seconds=env_int("SANDBOX_LIMIT_CPU_SECONDS", cls.cpu_seconds),
            address_space_mb=env_int("SANDBOX_LIMIT_ADDRESS_SPACE_MB", cls.address_space_mb),
            processes=env_int("SANDBOX_LIMIT_PROCESSES", cls.processes),
            file_size_mb=env_int("SANDBOX_LIMIT_FILE_SIZE_MB", cls.file_size_mb),
            open_files=env_int("SANDBOX_LIMIT_OPEN_FILES", cls.open_files),
            result_max_bytes=env_int("SANDBOX_RESULT_MAX_BYTES", cls.result_max_bytes),
        )


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    host: str = "localhost"  # SANDBOX_HOST: loopback unless set; off loopback it needs STRATEXEC_INTERNAL_TOKEN
    port: int = 50053
    data_provider: str = "bundled"  # bundled | csv | yfinance
    bundled_dir: str = str(project_root() / "data" / "ohlcv")
    csv_dir: str = ""  # SANDBOX_CSV_DIR, for the csv provider
    cache_dir: str = ""  # SANDBOX_CACHE_DIR: yfinance on-disk cache
    cache_ttl_seconds: int = 6 * 3600  # yfinance cache freshness
    scratch_dir: str = ""  # SANDBOX_SCRATCH_DIR: each instance claims <scratch>/instance-<k> (lock file) for its runs
    numba_cache_dir: str = ""  # SANDBOX_NUMBA_CACHE_DIR: compiled kernels of the warm parents, per host, kept across restarts
    default_timeout_seconds: float = 60.0
    max_timeout_seconds: float = 600.0
    output_cap_bytes: int = 64 * 1024  # captured stdout+stderr per run
    mode: str = "pool"  # pool (a fresh fork of a warm parent per run) | fresh (a new interpreter per run)
    pool_size: int = os.cpu_count() or 1  # concurrent runs (and warm parents in pool mode)
    queue_size: int = 32  # runs of one caller waiting for a slot; RESOURCE_EXHAUSTED past it
    queue_total: int = 128  # SANDBOX_QUEUE_TOTAL: runs waiting over all callers
    recycle_after: int = 200  # pool mode: a warm parent is replaced after this many runs
    uid_base: int = 61000  # run uids are uid_base + slot when the service runs as root
    isolation: str = "auto"  # auto | bwrap | unshare | none  (which outer jail to use)
    require_layers: str = ""  # comma-separated layers that must be active, or start-up fails
    limits: Limits = dataclasses.field(default_factory=Limits)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls) -> "SandboxConfig":
        data_dir = default_data_dir("sandbox")
        return cls(
            host=env_str("SANDBOX_HOST", cls.host),
            port=env_int("SANDBOX_PORT", cls.port),
            data_provider=env_str("SANDBOX_DATA_PROVIDER", cls.data_provider).strip().lower(),
            bundled_dir=str(env_path("SANDBOX_BUNDLED_DIR", cls.bundled_dir)),
            csv_dir=str(env_path("SANDBOX_CSV_DIR", os.path.join(data_dir, "csv"))),
            cache_dir=str(env_path("SANDBOX_CACHE_DIR", os.path.join(data_dir, "cache"))),
            cache_ttl_seconds=env_int("SANDBOX_CACHE_TTL_SECONDS", cls.cache_ttl_seconds),
            scratch_dir=str(env_path("SANDBOX_SCRATCH_DIR", os.path.join(data_dir, "scratch"))),
            numba_cache_dir=str(env_path("SANDBOX_NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "stratexec-sandbox-numba"))),
            default_timeout_seconds=env_float("SANDBOX_DEFAULT_TIMEOUT_SECONDS", cls.default_timeout_seconds),
            max_timeout_seconds=env_float("SANDBOX_MAX_TIMEOUT_SECONDS", cls.max_timeout_seconds),
            output_cap_bytes=env_int("SANDBOX_OUTPUT_CAP_BYTES", cls.output_cap_bytes),
            mode=env_str("SANDBOX_MODE", cls.mode).strip().lower(),
            pool_size=max(1, env_int("SANDBOX_POOL_SIZE", os.cpu_count() or 1)),
            queue_size=max(0, env_int("SANDBOX_QUEUE_SIZE", cls.queue_size)),
            queue_total=max(0, env_int("SANDBOX_QUEUE_TOTAL", max(cls.queue_total, 4 * env_int("SANDBOX_QUEUE_SIZE", cls.queue_size)))),
            recycle_after=max(1, env_int("SANDBOX_RECYCLE_AFTER", cls.recycle_after)),
            uid_base=env_int("SANDBOX_UID_BASE", cls.uid_base),
            isolation=env_str("SANDBOX_ISOLATION", cls.isolation).strip().lower(),
            require_layers=env_str("SANDBOX_REQUIRE_LAYERS", ""),
            limits=Limits.from_env(),
            log_level=env_str("SANDBOX_LOG_LEVEL", cls.log_level),
        )
