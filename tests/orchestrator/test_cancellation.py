"""Cancelling an execution cancels its running call at once, on the server
too: the call waits on the future, and the cancellation's callback cancels it
(no polling loop)."""
from __future__ import annotations

import concurrent.futures
import threading
import types

import grpc
import pytest

from services.orchestrator.clients import Cancellation, Cancelled, ServiceClients


def test_callbacks_run_once_when_set_at_once_if_already_set_and_not_after_being_forgotten():
    cancel, calls = Cancellation(), []
    cancel.on_set(lambda: calls.append("a"))
    forget = cancel.on_set(lambda: calls.append("forgotten"))
    forget()
    cancel.set()
    cancel.set()
    cancel.on_set(lambda: calls.append("late"))
    assert calls == ["a", "late"] and cancel.is_set()


@pytest.fixture
def slow_server():
    """A real gRPC server whose one method waits until its caller goes away; records that it did."""
    gone = threading.Event()

    def wait(_request, context):
        context.add_callback(gone.set)
        gone.wait(30)
        return b""

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "test.Slow", {"Wait": grpc.unary_unary_rpc_method_handler(wait)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", gone
    server.stop(0)


def test_a_running_call_is_cancelled_on_the_server_when_the_execution_is(slow_server):
    address, gone = slow_server
    clients = types.SimpleNamespace(config=types.SimpleNamespace(call_timeout_s=30), metadata=())
    cancel = Cancellation()
    with grpc.insecure_channel(address) as channel:
        method = channel.unary_unary("/test.Slow/Wait")
        threading.Timer(0.3, cancel.set).start()
        with pytest.raises(Cancelled):
            ServiceClients.call(clients, method, b"", cancel=cancel)
    assert gone.wait(5)  # the server saw its caller go away
    assert cancel._callbacks == []
