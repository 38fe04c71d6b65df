"""The execution id travels with every internal call as ``x-execution-id``
metadata: a client interceptor adds it from the caller's context, a server
interceptor puts it in the callee's, and every JSON log line carries it
(services.common.logs)."""
from __future__ import annotations

import collections

import grpc

from services.common.logs import execution_id_var

HEADER = "x-execution-id"
MAX_ID_CHARS = 64


class _CallDetails(collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                           "wait_for_ready", "compression")),
                   grpc.ClientCallDetails):
    pass


class ExecutionIdClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the current execution id (if any) to the call's metadata."""

    def _details(self, details):
        execution_id = execution_id_var.get()
        if not execution_id:
            return details
        metadata = [*(details.metadata or ()), (HEADER, execution_id)]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    return grpc.intercept_channel(channel, ExecutionIdClientInterceptor())


class ExecutionIdServerInterceptor(grpc.aio.ServerInterceptor):
    """Sets the execution id of the call's ``x-execution-id`` metadata for the handler (and its logs)."""

    async def intercept_service(self, continuation, handler_call_details):
        for key, value in handler_call_details.invocation_metadata or ():
            if key == HEADER:
                execution_id_var.set(str(value)[:MAX_ID_CHARS])
                break
        return await continuation(handler_call_details)
