"""Memories survive a restart (SIGTERM, then a new process on the same data
directory); a second process on a busy data directory fails clearly;
template seeding is idempotent across restarts."""
from __future__ import annotations

import grpc
import pytest
from tests.memory.memory_helpers import add, list_all, search, start_memory

from stratexec.memory.v1 import memory_pb2, memory_pb2_grpc


def test_memories_survive_a_restart_and_seeding_is_idempotent(tmp_path):
    data_dir = tmp_path / "data"
    svc = start_memory(tmp_path / "run1", data_dir)
    try:
        with grpc.insecure_channel(svc.address) as channel:
            stub = memory_pb2_grpc.MemoryServiceStub(channel)
            added = [add(stub, "carol", text, kind="strategy_note", n=i)[0] for i, text in enumerate([
                "Bollinger band squeeze breakout on SOL worked in 2024: +31%",
                "RSI 30/70 mean reversion on BTC lost money in trending 2021",
                "User carol prefers max drawdown under 15%",
            ])]
            [deleted] = add(stub, "carol", "temporary note to delete")
            stub.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=deleted.id, user_id="carol"), timeout=30)
            templates_before = list_all(stub, "system")
    finally:
        assert svc.stop() == 0  # SIGTERM: graceful exit, store closed

    svc = start_memory(tmp_path / "run2", data_dir)
    try:
        with grpc.insecure_channel(svc.address) as channel:
            stub = memory_pb2_grpc.MemoryServiceStub(channel)
            after = list_all(stub, "carol")
            assert [(m.id, m.content, m.created_at, dict(m.metadata)) for m in after] == \
                   [(m.id, m.content, m.created_at, dict(m.metadata)) for m in added]
            [top] = search(stub, "carol", "volatility squeeze breakout on Solana", limit=1)
            assert top.id == added[0].id and top.score > 0
            templates_after = list_all(stub, "system")
            assert len(templates_before) == 4
            assert [m.id for m in templates_after] == [m.id for m in templates_before]
    finally:
        assert svc.stop() == 0
    assert '"added": 0' in svc.log_path.read_text()  # second start kept the seeded templates


def test_second_process_on_the_same_data_dir_fails_with_a_clear_message(tmp_path):
    data_dir = tmp_path / "data"
    svc = start_memory(tmp_path / "run1", data_dir)
    try:
        with pytest.raises(RuntimeError) as err:
            start_memory(tmp_path / "run2", data_dir)
        message = str(err.value)
        assert "in use by another memory service process" in message
        assert f"pid {svc.proc.pid}" in message
        # the first process is unharmed
        with grpc.insecure_channel(svc.address) as channel:
            stub = memory_pb2_grpc.MemoryServiceStub(channel)
            [memory] = add(stub, "dave", "still serving")
            assert [m.id for m in list_all(stub, "dave")] == [memory.id]
    finally:
        svc.stop()
