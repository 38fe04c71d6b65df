"""Fixtures of the memory service tests: a real `python -m services.memory`
process on a free port with a temporary data directory, started once per
test module (loading the embedder takes seconds)."""
from __future__ import annotations

import uuid

import grpc
import pytest
from tests.memory.memory_helpers import start_memory

from stratexec.memory.v1 import memory_pb2_grpc


@pytest.fixture(scope="module")
def memory_service(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("memory-run")
    svc = start_memory(run_dir, run_dir / "data")
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def stub(memory_service):
    with grpc.insecure_channel(memory_service.address) as channel:
        yield memory_pb2_grpc.MemoryServiceStub(channel)


@pytest.fixture
def user_id() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"
