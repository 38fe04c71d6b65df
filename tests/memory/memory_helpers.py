"""Helpers shared by the memory service tests (a uniquely named module, so
`from tests.memory.memory_helpers import ...`)."""
from __future__ import annotations

import pathlib

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.stack import ServiceProcess, start_service, wait_serving
from stratexec.memory.v1 import memory_pb2

READY_TIMEOUT = 180


def start_memory(run_dir: pathlib.Path, data_dir: pathlib.Path, **env: str) -> ServiceProcess:
    """Start the memory service on a free port and wait until it is SERVING."""
    svc = start_service("memory", run_dir, port=0, env={"MEMORY_DATA_DIR": str(data_dir), **env})
    try:
        wait_serving(svc.address, READY_TIMEOUT, svc.proc, svc.log_path)
    except BaseException:
        svc.stop()
        raise
    return svc


def struct(**values) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def add(stub, user_id: str, *contents: str, timeout: float = 30, **metadata) -> list[memory_pb2.Memory]:
    request = memory_pb2.AddMemoryRequest(
        user_id=user_id,
        messages=[memory_pb2.MemoryMessage(role="user", content=c) for c in contents],
        metadata=struct(**metadata),
    )
    return list(stub.AddMemory(request, timeout=timeout).memories)


def search(stub, user_id: str, query: str, limit: int = 5, threshold: float = 0.0, **filters) -> list[memory_pb2.Memory]:
    request = memory_pb2.SearchMemoriesRequest(user_id=user_id, query=query, limit=limit, threshold=threshold,
                                               filters=struct(**filters))
    return list(stub.SearchMemories(request, timeout=30).memories)


def list_all(stub, user_id: str, page_size: int = 0) -> list[memory_pb2.Memory]:
    out, token = [], ""
    while True:
        reply = stub.ListMemories(memory_pb2.ListMemoriesRequest(user_id=user_id, page_size=page_size, page_token=token), timeout=30)
        out.extend(reply.memories)
        token = reply.next_page_token
        if not token:
            return out


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """BadRequest field violations of a failed call, as {field: description}."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    out = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def error_reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""
