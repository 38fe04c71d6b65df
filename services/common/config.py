"""Paths shared by the services' settings (services.common.settings holds the settings base)."""
from __future__ import annotations

import os
import pathlib


def project_root() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parents[2]


def default_data_dir(service: str) -> str:
    """Default data directory: <root>/.run/data/<service>, overridable per service."""
    base = os.environ.get("STRATEXEC_DATA_DIR") or str(project_root() / ".run" / "data")
    return str(pathlib.Path(base) / service)
