"""Canonical gRPC errors with google.rpc.Status details (ErrorInfo, BadRequest).

Servers raise ``ApiError``; the interceptor in services.common.server turns
it into a rich status that clients read with ``status_from_rpc_error``.
It is also the one error boundary of every service: ``boundary_error``
maps any other exception to a canonical code (a decode error is
INVALID_ARGUMENT, a locked or unreachable database UNAVAILABLE, a corrupt
one DATA_LOSS, the rest INTERNAL) with a generic message and an error id
that is logged with the exception; SQL text and parameters never leave.
"""
from __future__ import annotations

import uuid
from typing import Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "stratexec.dev"


class ApiError(Exception):
    """An error to return to the caller as a canonical status with details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        violations: Iterable[tuple[str, str]] = (),
        retry_delay_s: float | None = None,
    ):
        super().__init__(message)
        self.retry_delay_s = retry_delay_s
        self.code = code
        self.message = message
        self.reason = reason or code.name
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        self.violations = list(violations)

    @classmethod
    def from_status(cls, status: status_pb2.Status) -> "ApiError":
        """Pass on the rich status another service returned, details and all."""
        error = cls(grpc.StatusCode.UNKNOWN, status.message)
        for code in grpc.StatusCode:
            if code.value[0] == status.code:
                error.code = code
        error._status = status
        return error

    def to_status(self) -> status_pb2.Status:
        if getattr(self, "_status", None) is not None:
            return self._status
        return make_status(self.code, self.message, reason=self.reason, metadata=self.metadata, violations=self.violations,
                           retry_delay_s=self.retry_delay_s)


MAX_VIOLATIONS = 20  # field violations sent in one BadRequest; the rest are counted
MAX_DETAILS_BYTES = 4096  # the details travel base64-encoded in a trailer (gRPC refuses ~8-16 KiB of metadata)
MAX_DESCRIPTION_CHARS = 300


def capped_violations(violations: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """The first violations that fit the trailer budget, and how many were left out."""
    kept: list[tuple[str, str]] = []
    size = 0
    for field, description in violations:
        if len(description) > MAX_DESCRIPTION_CHARS:
            description = description[:MAX_DESCRIPTION_CHARS - 3] + "..."
        size += len(field.encode()) + len(description.encode()) + 8
        if len(kept) >= MAX_VIOLATIONS or size > MAX_DETAILS_BYTES:
            break
        kept.append((field, description))
    return kept, len(violations) - len(kept)


def make_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str = "",
    metadata: dict[str, str] | None = None,
    violations: Iterable[tuple[str, str]] = (),
    retry_delay_s: float | None = None,
) -> status_pb2.Status:
    """A google.rpc.Status with ErrorInfo, BadRequest (given violations) and RetryInfo (given a delay)."""
    violations, left_out = capped_violations(list(violations))
    metadata = dict(metadata or {})
    if left_out:
        metadata["violations_not_shown"] = str(left_out)
        message = f"{message} ({len(violations)} violations shown, {left_out} more not shown: fix these and resubmit)"
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason or code.name, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status.details.append(detail)
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations]
        )
        detail = any_pb2.Any()
        detail.Pack(bad)
        status.details.append(detail)
    if retry_delay_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(int(retry_delay_s * 1000))
        detail = any_pb2.Any()
        detail.Pack(retry)
        status.details.append(detail)
    return status


def invalid_argument(message: str, violations: Iterable[tuple[str, str]] = (), reason: str = "INVALID_ARGUMENT", **metadata) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message, reason=reason, violations=violations, metadata=metadata)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, f"{what} {ident!r} not found", reason=f"{what.upper()}_NOT_FOUND", metadata={"id": ident})


def name_taken(what: str, name: str) -> ApiError:
    """ALREADY_EXISTS for one of the caller's named things (a dataset, a saved indicator) stored without replace."""
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, f"you already have a {what} named {name}: send replace to overwrite it",
                    reason=f"{what.upper()}_EXISTS", metadata={what: name})


def failed_precondition(message: str, reason: str, **metadata) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message, reason=reason, metadata=metadata)


async def abort(context: grpc.aio.ServicerContext, error: ApiError) -> None:
    await context.abort_with_status(rpc_status.to_status(error.to_status()))


def status_from_rpc_error(error: grpc.RpcError) -> status_pb2.Status:
    """The rich status of a failed call, or a plain one built from its code."""
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    if status is None:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        status = make_status(code, error.details() if hasattr(error, "details") else str(error), reason=code.name)
    return status


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def code_name(status: status_pb2.Status) -> str:
    return code_pb2.Code.Name(status.code)


def describe(status: status_pb2.Status) -> str:
    """One line: CODE: message (field: description; ...)."""
    text = f"{code_name(status)}: {status.message}"
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            # a violation the headline already says is not repeated
            parts = [f"{v.field}: {v.description}" for v in bad.field_violations if v.description not in status.message]
            if parts:
                text += " (" + "; ".join(parts) + ")"
    return text


# Messages of database errors that a retry does not cure (SQLite and PostgreSQL wording).
CORRUPTION_MARKERS = ("malformed", "not a database", "corrupt", "disk i/o error", "invalid page", "data_corrupted")


def is_corruption(exc: BaseException) -> bool:
    """A persistent database error: a corrupt file or page, not a lock or an outage."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(marker in text for marker in CORRUPTION_MARKERS)


def _database_error(exc: BaseException) -> "ApiError | None":
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - every service has SQLAlchemy installed
        return None
    if not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    if is_corruption(exc):
        return None  # DATA_LOSS, with an error id (boundary_error)
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.TimeoutError, sa_exc.DisconnectionError)) or getattr(
            exc, "connection_invalidated", False):
        return ApiError(grpc.StatusCode.UNAVAILABLE, "the database is unavailable (locked or unreachable); retry later",
                        reason="DATABASE_UNAVAILABLE")
    return None


def boundary_error(exc: BaseException) -> tuple["ApiError", str | None]:
    """The status to return for an exception a handler raised, and an error id to log it under (or None).

    Known errors keep their canonical meaning; anything else is INTERNAL with
    a generic message. No exception text reaches the caller except a decode
    error's, which names only the malformed message.
    """
    if isinstance(exc, ApiError):
        return exc, None
    from google.protobuf.message import DecodeError

    if isinstance(exc, (DecodeError, RecursionError)):
        return ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                        "the request could not be decoded (malformed, or nested too deeply)",
                        reason="DECODE_ERROR"), None
    known = _database_error(exc)
    if known is not None:
        return known, None
    error_id = uuid.uuid4().hex[:16]
    if is_corruption(exc):
        return ApiError(grpc.StatusCode.DATA_LOSS, f"the database is damaged; the operators were told (error id {error_id})",
                        reason="DATA_LOSS", metadata={"error_id": error_id}), error_id
    return ApiError(grpc.StatusCode.INTERNAL, f"internal error (error id {error_id})", reason="INTERNAL",
                    metadata={"error_id": error_id}), error_id
