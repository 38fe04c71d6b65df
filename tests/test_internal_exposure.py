"""Safe defaults of the internal services and of the trusted identity mode (issue 14, item 3)."""
from __future__ import annotations

import logging
import socket
import subprocess
import sys

import grpc
import pytest

from services.codegen.config import CodegenConfig
from services.common.config import project_root
from services.memory.config import MemoryConfig
from services.orchestrator.identity import Identity
from services.sandbox.config import SandboxConfig
from services.stack import start_service, wait_serving

OFF_LOOPBACK = "192.0.2.2"  # documentation range; reachable only if this host has it


def host_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.250", 9))  # no packet is sent for UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("config,name", [(CodegenConfig, "CODEGEN_HOST"), (SandboxConfig, "SANDBOX_HOST"),
                                         (MemoryConfig, "MEMORY_HOST")])
def test_internal_services_bind_loopback_by_default(monkeypatch, config, name):
    monkeypatch.delenv(name, raising=False)
    assert config.from_env().host == "localhost"


def test_off_loopback_without_a_token_the_service_refuses_to_start(tmp_path):
    env = {"CODEGEN_HOST": "[::]", "CODEGEN_PORT": "0", "STRATEXEC_INTERNAL_TOKEN": "",
           "STRATEXEC_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "services.codegen"], cwd=project_root(), capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ, **env})
    assert proc.returncode != 0
    assert "STRATEXEC_INTERNAL_TOKEN" in proc.stderr + proc.stdout and "loopback" in proc.stderr + proc.stdout


def test_default_codegen_is_not_reachable_off_loopback(tmp_path):
    address = host_address()
    if address is None:
        pytest.skip("this host has no non-loopback address")
    svc = start_service("codegen", tmp_path, 0, {"STRATEXEC_INTERNAL_TOKEN": ""})
    try:
        wait_serving(svc.address, 120, svc.proc, svc.log_path)
        with socket.socket() as outside:
            outside.settimeout(3)
            assert outside.connect_ex((address, svc.port)) != 0  # refused: it listens on loopback only
        with grpc.insecure_channel(f"{address}:{svc.port}") as channel:
            with pytest.raises(grpc.FutureTimeoutError):
                grpc.channel_ready_future(channel).result(timeout=2)
    finally:
        svc.stop()


class Call:
    """The two things Identity reads from a grpc.aio ServicerContext."""

    def __init__(self, peer: str, user: str | None):
        self._peer, self._metadata = peer, (() if user is None else (("x-user-id", user),))

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self):
        return self._metadata


@pytest.mark.parametrize("peer", ["ipv4:127.0.0.1:40000", "ipv6:%5B::1%5D:40000", "unix:/tmp/s.sock"])
def test_trusted_mode_takes_x_user_id_from_loopback(peer):
    assert Identity("trusted", "default").user(Call(peer, "alice")) == "alice"


@pytest.mark.parametrize("peer", ["ipv4:192.0.2.7:40000", "ipv6:%5Bfd00::9%5D:40000"])
def test_trusted_mode_refuses_x_user_id_from_elsewhere(peer):
    from services.common.errors import ApiError

    with pytest.raises(ApiError) as refused:
        Identity("trusted", "default").user(Call(peer, "alice"))
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "ORCHESTRATOR_TRUST_REMOTE_USER_ID" in refused.value.message
    assert Identity("trusted", "default").user(Call(peer, None)) == "default"  # no header: the default user


def test_trusting_remote_user_ids_is_an_opt_in_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        identity = Identity("trusted", "default", trust_remote=True)
    assert identity.user(Call("ipv4:192.0.2.7:40000", "alice")) == "alice"
    assert any("x-user-id" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
