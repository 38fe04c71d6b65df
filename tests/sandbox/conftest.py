"""A real sandbox server on a free port, and a runner for containment tests."""
from __future__ import annotations

import os
import pathlib

import grpc
import pytest

from services.stack import start_service, wait_serving
from stratexec.sandbox.v1 import sandbox_pb2_grpc

PLANTED = {
    "ANTHROPIC_API_KEY": "sk-planted-anthropic-secret",
    "DATABASE_URL": "postgresql://planted:secret@db/stratexec",
    "STRATEXEC_PLANTED_SECRET": "planted-secret-value",
}


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sandbox-run")
    scratch = run_dir / "scratch"
    env = {
        **PLANTED,
        "SANDBOX_SCRATCH_DIR": str(scratch),
        "SANDBOX_MODE": "fresh",  # the warm pool has its own server: pool_server below
        "SANDBOX_POOL_SIZE": "2",
        "SANDBOX_OUTPUT_CAP_BYTES": "20000",
    }
    svc = start_service("sandbox", run_dir, 0, env)
    try:
        wait_serving(svc.address, 120, svc.proc, svc.log_path)
        svc.scratch = scratch
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def stub(sandbox_server):
    with grpc.insecure_channel(sandbox_server.address) as channel:
        yield sandbox_pb2_grpc.SandboxServiceStub(channel)


POOL_RECYCLE_AFTER = 4


@pytest.fixture(scope="session")
def pool_server(tmp_path_factory):
    """The sandbox in its default mode (the warm pool), one slot, a queue of one."""
    run_dir = tmp_path_factory.mktemp("sandbox-pool")
    env = {"SANDBOX_MODE": "pool", "SANDBOX_POOL_SIZE": "1", "SANDBOX_QUEUE_SIZE": "1",
           "SANDBOX_RECYCLE_AFTER": str(POOL_RECYCLE_AFTER), "SANDBOX_SCRATCH_DIR": str(run_dir / "scratch")}
    svc = start_service("sandbox", run_dir, 0, env)
    try:
        wait_serving(svc.address, 300, svc.proc, svc.log_path)
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def pool_stub(pool_server):
    with grpc.insecure_channel(pool_server.address) as channel:
        yield sandbox_pb2_grpc.SandboxServiceStub(channel)


def surviving(token: str) -> list[int]:
    """Pids of processes whose command line contains ``token``."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(entry.name))
    return found
