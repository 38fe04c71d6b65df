"""Helpers for the typed, environment-driven config object of each service."""
from __future__ import annotations

import os
import pathlib


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def env_path(name: str, default: str) -> pathlib.Path:
    return pathlib.Path(os.environ.get(name) or default).expanduser().resolve()


def project_root() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parents[2]


def default_data_dir(service: str) -> str:
    """Default data directory: <root>/.run/data/<service>, overridable per service."""
    base = os.environ.get("STRATEXEC_DATA_DIR") or str(project_root() / ".run" / "data")
    return str(pathlib.Path(base) / service)
