"""The shape every stratexec server shares: grpc.aio, health, reflection,
ApiError -> rich status, and graceful shutdown on SIGTERM and SIGINT.

    await serve(ServerSpec(...), register=lambda server: add_FooServicer_to_server(...))
"""
from __future__ import annotations

import asyncio
import dataclasses
import hmac
import inspect
import logging
import os
import signal
from typing import Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import errors
from services.common.logs import log
from services.common.tracing import ExecutionIdServerInterceptor

MAX_MESSAGE_BYTES = 32 * 1024 * 1024


@dataclasses.dataclass
class ServerSpec:
    name: str  # "codegen", "sandbox", ...
    host: str
    port: int  # 0 picks a free port; the chosen one is logged and written to STRATEXEC_PORT_FILE
    service_names: list[str]  # full names, for health and reflection
    grace_seconds: float = 5.0
    internal: bool = True  # an internal service: calls need STRATEXEC_INTERNAL_TOKEN when one is configured


INTERNAL_TOKEN_ENV = "STRATEXEC_INTERNAL_TOKEN"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for a bind host only this machine can reach."""
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_token_off_loopback(spec: "ServerSpec", token: str) -> None:
    """An internal service reachable from other machines must authenticate its callers."""
    if spec.internal and not token and not is_loopback(spec.host):
        raise SystemExit(f"{spec.name}: refusing to listen on {spec.host} (off loopback) without "
                         f"{INTERNAL_TOKEN_ENV}: set the same secret on every service, or bind loopback "
                         f"({spec.name.upper()}_HOST=localhost, the default)")
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")  # probes and grpcurl discovery stay open


class InternalTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <internal token>`` (UNAUTHENTICATED)."""

    def __init__(self, token: str):
        self.expected = f"Bearer {token}"

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(OPEN_PREFIXES):
            return await continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(sent, self.expected):
            return await continuation(handler_call_details)

        async def deny(request, context):
            await errors.abort(context, errors.ApiError(
                grpc.StatusCode.UNAUTHENTICATED, "this internal service needs the internal token", reason="UNAUTHENTICATED"))

        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_stream:
            async def deny_stream(request, context):
                await deny(request, context)
                yield  # pragma: no cover

            return grpc.unary_stream_rpc_method_handler(deny_stream, handler.request_deserializer,
                                                        handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)


class _Undecodable:
    """A request whose bytes did not parse: the handler raises its error inside the boundary."""

    def __init__(self, error: Exception):
        self.error = error


def _tolerant(deserializer):
    if deserializer is None:
        return None

    def decode(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # gRPC would answer INTERNAL "Exception deserializing request!"
            return _Undecodable(exc)

    return decode


def _decoded(handler):
    def call(request, context):
        if isinstance(request, _Undecodable):
            raise request.error
        return handler(request, context)

    return call


class ApiErrorInterceptor(grpc.aio.ServerInterceptor):
    """The error boundary: ApiError becomes a canonical status with details, and
    any other exception the one ``errors.boundary_error`` maps it to (never its
    text: an INTERNAL one carries an error id, logged here with the traceback)."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    async def _abort(self, context, method: str, exc: Exception) -> None:
        error, error_id = errors.boundary_error(exc)
        if error_id is not None:
            self.logger.error("unhandled error in %s", method, exc_info=exc,
                              extra={"fields": {"error_id": error_id, "code": error.code.name}})
        elif not isinstance(exc, errors.ApiError):
            log(self.logger, logging.WARNING, f"{method} failed", code=error.code.name,
                error=f"{type(exc).__module__}.{type(exc).__name__}")
        await errors.abort(context, error)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        decode = _tolerant(handler.request_deserializer)
        if handler.unary_unary:
            inner = _decoded(handler.unary_unary)

            async def unary_unary(request, context):
                try:
                    return await inner(request, context)
                except (asyncio.CancelledError, grpc.aio.AbortError):
                    raise
                except Exception as exc:
                    await self._abort(context, method, exc)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, decode, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = _decoded(handler.unary_stream)

            async def unary_stream(request, context):
                try:
                    stream = inner_stream(request, context)
                    if inspect.isawaitable(stream):  # a handler that writes with context.write (Health/Watch)
                        await stream
                        return
                    async for item in stream:
                        yield item
                except (asyncio.CancelledError, grpc.aio.AbortError):
                    raise
                except Exception as exc:
                    await self._abort(context, method, exc)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, decode, handler.response_serializer
            )
        if handler.stream_unary:
            inner_client_stream = handler.stream_unary

            async def decoded(requests):
                async for request in requests:
                    if isinstance(request, _Undecodable):
                        raise request.error
                    yield request

            async def stream_unary(requests, context):
                try:
                    return await inner_client_stream(decoded(requests), context)
                except (asyncio.CancelledError, grpc.aio.AbortError):
                    raise
                except Exception as exc:
                    await self._abort(context, method, exc)

            return grpc.stream_unary_rpc_method_handler(stream_unary, decode, handler.response_serializer)
        return handler


async def serve(
    spec: ServerSpec,
    register: Callable[[grpc.aio.Server], None],
    logger: logging.Logger,
    on_start: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    unready: Callable[[], str | None] | None = None,
) -> None:
    """Run a server until SIGTERM or SIGINT.

    Health reports NOT_SERVING until ``on_start`` (warm-up, model loading)
    has finished, then SERVING; on a signal it reports NOT_SERVING, stops
    accepting calls, lets running calls finish for ``grace_seconds``, then
    runs ``on_stop``. With ``unready``, checked every second, health turns
    NOT_SERVING for good once it returns a reason (a corrupt database).
    """
    interceptors: list[grpc.aio.ServerInterceptor] = [ExecutionIdServerInterceptor(), ApiErrorInterceptor(logger)]
    internal_token = os.environ.get(INTERNAL_TOKEN_ENV, "")
    require_token_off_loopback(spec, internal_token)
    if spec.internal and internal_token:
        interceptors.insert(0, InternalTokenInterceptor(internal_token))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    register(server)
    reflection.enable_server_reflection(
        [*spec.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port(f"{spec.host}:{spec.port}")
    if port == 0:
        raise SystemExit(f"{spec.name}: cannot bind {spec.host}:{spec.port}")
    for name in ["", *spec.service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    log(logger, logging.INFO, "listening", port=port, host=spec.host,
        internal_token=bool(spec.internal and internal_token))
    port_file = os.environ.get("STRATEXEC_PORT_FILE")
    if port_file:
        tmp = f"{port_file}.tmp"
        with open(tmp, "w") as fh:
            fh.write(str(port))
        os.replace(tmp, port_file)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def start_up() -> None:
        if on_start is not None:
            await on_start()
        for name in ["", *spec.service_names]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log(logger, logging.INFO, "serving", port=port)

    async def watch_readiness() -> None:
        while unready is not None:
            await asyncio.sleep(1.0)
            reason = unready()
            if reason:
                for name in ["", *spec.service_names]:
                    await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
                log(logger, logging.ERROR, "not ready", reason=reason)
                return

    starter = asyncio.create_task(start_up())
    watcher = asyncio.create_task(watch_readiness())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({starter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if starter in done and starter.exception() is not None:
        log(logger, logging.ERROR, "start-up failed", error=repr(starter.exception()))
        await server.stop(0)
        raise SystemExit(1)
    await stop.wait()
    log(logger, logging.INFO, "shutting down", grace_seconds=spec.grace_seconds)
    starter.cancel()
    watcher.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(spec.grace_seconds)
    if on_stop is not None:
        await on_stop()
    log(logger, logging.INFO, "stopped")
