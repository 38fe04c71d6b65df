"""gRPC clients of codegen, sandbox and memory, as the crew's tools use
them: every call has a deadline, UNAVAILABLE is retried with backoff a
bounded number of times, and a running call can be cancelled."""
from __future__ import annotations

import threading
import time

import grpc

from services.common.tracing import traced_channel
from services.orchestrator import replicas
from services.orchestrator.config import OrchestratorConfig
from stratexec.codegen.v1 import codegen_pb2_grpc
from stratexec.memory.v1 import memory_pb2_grpc
from stratexec.sandbox.v1 import sandbox_pb2_grpc

CHANNEL_OPTIONS = [
    ("grpc.service_config", replicas.SERVICE_CONFIG),  # round_robin over the replicas that are SERVING
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ("grpc.max_send_message_length", 32 * 1024 * 1024),
]


class Cancelled(Exception):
    """The execution was cancelled while a call was running."""


class ServiceClients:
    def __init__(self, config: OrchestratorConfig):
        self.config = config
        self._channels = [grpc.insecure_channel(replicas.channel_target(a), options=CHANNEL_OPTIONS)
                          for a in (config.codegen_addr, config.sandbox_addr, config.memory_addr)]
        codegen, sandbox, memory = (traced_channel(c) for c in self._channels)  # x-execution-id on every call
        self.codegen = codegen_pb2_grpc.CodegenServiceStub(codegen)
        self.sandbox = sandbox_pb2_grpc.SandboxServiceStub(sandbox)
        self.memory = memory_pb2_grpc.MemoryServiceStub(memory)
        self.metadata = (("authorization", f"Bearer {config.internal_token}"),) if config.internal_token else ()

    def call(self, method, request, *, timeout: float | None = None, cancel: threading.Event | None = None):
        """Call ``method`` (a stub's multi-callable), retrying UNAVAILABLE.

        With ``cancel``, the call is abandoned (and cancelled on the server)
        as soon as the event is set.
        """
        timeout = timeout or self.config.call_timeout_s
        delay = 0.25
        for attempt in range(self.config.unavailable_retries + 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            future = method.future(request, timeout=timeout, metadata=self.metadata)
            try:
                while True:
                    try:
                        return future.result(timeout=0.2)
                    except grpc.FutureTimeoutError:
                        if cancel is not None and cancel.is_set():
                            future.cancel()
                            raise Cancelled() from None
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED and cancel is not None and cancel.is_set():
                    raise Cancelled() from None
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.config.unavailable_retries:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 4.0)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
