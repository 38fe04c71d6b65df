"""The one error boundary every service's server has (services/common/server.py):
known errors keep their canonical code, anything else is INTERNAL with a
generic message and an error id that is in the logs; SQL text and
parameters never reach the caller. A real grpc.aio server on a free port,
a real locked SQLite file, a real over-deep protobuf message."""
from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import grpc
import pytest
import sqlalchemy
from google.protobuf import struct_pb2
from grpc_status import rpc_status

from services.common import errors
from services.common.logs import JsonFormatter
from services.common.server import ApiErrorInterceptor

SECRET = "INSERT INTO strategies (id, user_id) VALUES ('s-1', 'alice-secret')"


def nested(depth: int) -> struct_pb2.Struct:
    inner = struct_pb2.Struct()
    inner["leaf"] = 1
    for _ in range(depth):
        outer = struct_pb2.Struct()
        outer["k"] = inner
        inner = outer
    return inner


def locked_database(tmp_path):
    """A real 'database is locked' from SQLAlchemy, with the SQL and parameters in its text."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE strategies (id TEXT, user_id TEXT)")
    holder.commit()
    holder.execute("BEGIN EXCLUSIVE")
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("INSERT INTO strategies (id, user_id) VALUES (:id, :user)"),
                         {"id": "s-1", "user": "alice-secret"})
    except sqlalchemy.exc.OperationalError as exc:
        return exc
    finally:
        holder.close()
        engine.dispose()
    raise AssertionError("the database was not locked")


def raising(exc: Exception):
    async def handler(request, context):
        raise exc

    return handler


async def call_all(tmp_path, handlers: dict, requests: dict[str, bytes], records: list):
    logger = logging.getLogger("boundary-test")
    handler = logging.Handler()
    handler.setFormatter(JsonFormatter("test"))
    handler.emit = lambda record: records.append(json.loads(handler.format(record)))
    logger.addHandler(handler)
    server = grpc.aio.server(interceptors=[ApiErrorInterceptor(logger)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Boundary", {
        name: grpc.unary_unary_rpc_method_handler(h, request_deserializer=struct_pb2.Struct.FromString,
                                                  response_serializer=struct_pb2.Struct.SerializeToString)
        for name, h in handlers.items()})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    results = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for name, body in requests.items():
                call = channel.unary_unary(f"/test.Boundary/{name}")
                try:
                    await call(body, timeout=10)
                    results[name] = None
                except grpc.aio.AioRpcError as exc:
                    results[name] = exc
    finally:
        await server.stop(0)
        logger.removeHandler(handler)
    return results


def test_every_failure_gets_its_canonical_code_and_no_internals(tmp_path):
    async def echo(request, context):
        return request

    handlers = {
        "Echo": echo,
        "Locked": raising(locked_database(tmp_path)),
        "Unreachable": raising(sqlalchemy.exc.OperationalError(SECRET, {"user": "alice-secret"},
                                                               ConnectionRefusedError("connection refused"))),
        "Corrupt": raising(sqlalchemy.exc.DatabaseError(SECRET, {}, sqlite3.DatabaseError(
            "database disk image is malformed"))),
        "Bug": raising(KeyError(SECRET)),
    }
    requests = {"Echo": nested(120).SerializeToString(),  # beyond protobuf's recursion limit: it does not parse
                "Locked": b"", "Unreachable": b"", "Corrupt": b"", "Bug": b""}
    records: list = []

    results = asyncio.run(call_all(tmp_path, handlers, requests, records))

    codes = {name: exc.code() for name, exc in results.items()}
    assert codes == {"Echo": grpc.StatusCode.INVALID_ARGUMENT, "Locked": grpc.StatusCode.UNAVAILABLE,
                     "Unreachable": grpc.StatusCode.UNAVAILABLE, "Corrupt": grpc.StatusCode.DATA_LOSS,
                     "Bug": grpc.StatusCode.INTERNAL}
    for name, exc in results.items():
        status = rpc_status.from_call(exc)
        text = str(status)
        assert "INSERT" not in text and "alice-secret" not in text and "sqlite" not in text.lower(), (name, text)
        assert errors.error_info(status) is not None
    for name in ("Bug", "Corrupt"):
        error_id = errors.error_info(rpc_status.from_call(results[name])).metadata["error_id"]
        assert error_id in results[name].details()
        logged = [r for r in records if r.get("error_id") == error_id]
        assert len(logged) == 1 and "alice-secret" in logged[0]["exc"]  # the operator sees what the caller does not


@pytest.mark.parametrize("depth", [25])
def test_a_message_that_parses_still_passes_through(tmp_path, depth):
    async def echo(request, context):
        return request

    results = asyncio.run(call_all(tmp_path, {"Echo": echo}, {"Echo": nested(depth).SerializeToString()}, []))
    assert results == {"Echo": None}
