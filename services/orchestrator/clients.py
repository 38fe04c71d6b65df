"""gRPC clients of codegen, sandbox and memory, as the crew's tools use
them: every call has a deadline, UNAVAILABLE is retried by gRPC itself (a
service-config retry policy: exponential backoff with jitter, a bounded
number of attempts), channels reconnect quickly after a restart, and a
running call can be cancelled. An outage longer than the retries is the
worker's business: it re-queues the execution (services/orchestrator/worker.py)."""
from __future__ import annotations

import json
import threading
from typing import Callable

import grpc

from services.common.tracing import traced_channel
from services.orchestrator import replicas
from services.orchestrator.config import OrchestratorConfig
from stratexec.codegen.v1 import codegen_pb2_grpc
from stratexec.memory.v1 import memory_pb2_grpc
from stratexec.sandbox.v1 import sandbox_pb2_grpc

MAX_GRPC_ATTEMPTS = 5  # gRPC caps a retry policy's maxAttempts at 5


def service_config(retries: int) -> str:
    """Retry UNAVAILABLE on every method: 0.2 s, 0.4 s, ... up to 2 s between attempts, each drawn at
    random below that bound (gRPC's jitter), so replicas retrying at once do not stampede."""
    policy = {"maxAttempts": max(2, min(retries + 1, MAX_GRPC_ATTEMPTS)), "initialBackoff": "0.2s",
              "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
    return json.dumps({**json.loads(replicas.SERVICE_CONFIG), "methodConfig": [{"name": [{}], "retryPolicy": policy}]})


def channel_options(retries: int) -> list[tuple[str, object]]:
    return [
        ("grpc.max_receive_message_length", 32 * 1024 * 1024),
        ("grpc.max_send_message_length", 32 * 1024 * 1024),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config(retries)),  # + round_robin over the replicas that are SERVING
        # reconnect within a second of a restarted service listening again (the default backs off to 120 s)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


class Cancelled(Exception):
    """The execution was cancelled while a call was running."""


class Cancellation(threading.Event):
    """A threading.Event that also runs callbacks when set: a running call is
    cancelled the moment the execution is, without polling."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._callbacks: list = []

    def set(self) -> None:
        with self._lock:
            super().set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_set(self, callback) -> Callable[[], None]:
        """Run ``callback`` once when set (at once if already set); returns a function that unregisters it."""
        with self._lock:
            if not self.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


class ServiceClients:
    def __init__(self, config: OrchestratorConfig):
        self.config = config
        options = channel_options(config.unavailable_retries)
        self._channels = [grpc.insecure_channel(replicas.channel_target(a), options=options)
                          for a in (config.codegen_addr, config.sandbox_addr, config.memory_addr)]
        codegen, sandbox, memory = (traced_channel(c) for c in self._channels)  # x-execution-id on every call
        self.codegen = codegen_pb2_grpc.CodegenServiceStub(codegen)
        self.sandbox = sandbox_pb2_grpc.SandboxServiceStub(sandbox)
        self.memory = memory_pb2_grpc.MemoryServiceStub(memory)
        self.metadata = (("authorization", f"Bearer {config.internal_token}"),) if config.internal_token else ()

    def call(self, method, request, *, timeout: float | None = None, cancel: Cancellation | None = None):
        """Call ``method`` (a stub's multi-callable); gRPC retries UNAVAILABLE within the deadline.

        With ``cancel``, the call is abandoned (and cancelled on the server)
        as soon as the event is set.
        """
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        future = method.future(request, timeout=timeout or self.config.call_timeout_s, metadata=self.metadata)
        forget = cancel.on_set(future.cancel) if cancel is not None else (lambda: None)
        try:
            return future.result()
        except grpc.FutureCancelledError:
            raise Cancelled() from None
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and cancel is not None and cancel.is_set():
                raise Cancelled() from None
            raise
        finally:
            forget()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
