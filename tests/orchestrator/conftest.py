"""A real SQL database for each repository test: a SQLite file, and a
fresh PostgreSQL database on the machine's server (dropped afterwards)."""
from __future__ import annotations

import pytest

from tests.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'orchestrator.db'}"
        return
    with fresh_database() as url:
        yield url
