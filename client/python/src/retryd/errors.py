"""Errors: gRPC call errors raised by the clients, and the failure classes handlers raise.

The server owns the taxonomy: this library reports the facts of a failure (error code, HTTP
status, Retry-After) and a class only when the application chose one by raising or passing:

* :class:`TransientError` — a blip: retried with exponential backoff.
* :class:`RecoverableError` — a dependency down for a while: retried on the slower cadence.
* :class:`PermanentError` — will never succeed (bad schema): dead-lettered at once.

Everything else — :class:`HttpError` (see :func:`http_error`), ``requests`` and ``httpx`` errors
(recognised when those packages are installed), timeouts, any other exception — is reported
without a class, and the service's policy decides: by error code, then HTTP status, then its
``unclassified`` class (TRANSIENT by default).
"""

from __future__ import annotations

import datetime as _dt
import email.utils
from typing import Any, Dict, Optional, Tuple, Type, Union

import grpc

from retryd.types import ErrorClass, Failure

# ---------------------------------------------------------------------------------------------
# gRPC call errors


class RetrydError(Exception):
    """A retryd RPC failed.

    Attributes:
        code: the gRPC status code.
        message: the server's message (names the bad field for INVALID_ARGUMENT).
        metadata: the trailing metadata as a dict.
    """

    def __init__(self, code: grpc.StatusCode, message: str, metadata: Optional[Dict[str, Any]] = None):
        super().__init__(f"{message} (code={code.name})")
        self.code = code
        self.message = message
        self.metadata = metadata or {}


class InvalidArgumentError(RetrydError):
    """INVALID_ARGUMENT: the request was rejected and nothing changed."""


class NotFoundError(RetrydError):
    """NOT_FOUND."""


class LeaseLostError(RetrydError):
    """FAILED_PRECONDITION: the lease token is unknown, expired or belongs to another service."""


class ResourceExhaustedError(RetrydError):
    """RESOURCE_EXHAUSTED: payload over the limit, or the server is overloaded."""


class UnavailableError(RetrydError):
    """UNAVAILABLE: the server is shutting down or unreachable; retry the call."""


class DeadlineExceededError(RetrydError):
    """DEADLINE_EXCEEDED: the call's deadline passed."""


class UnauthenticatedError(RetrydError):
    """UNAUTHENTICATED: missing or unknown token."""


class PermissionDeniedError(RetrydError):
    """PERMISSION_DENIED: the token may not do this."""


_BY_CODE: Dict[grpc.StatusCode, Type[RetrydError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: LeaseLostError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def from_rpc_error(err: grpc.RpcError) -> RetrydError:
    """Convert a ``grpc.RpcError`` (sync or aio) into the matching :class:`RetrydError`."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else None) or str(err)
    md: Dict[str, Any] = {}
    try:
        for k, v in err.trailing_metadata() or ():  # type: ignore[attr-defined]
            md[k] = v
    except Exception:
        pass
    return _BY_CODE.get(code, RetrydError)(code, details, md)


# ---------------------------------------------------------------------------------------------
# Failure classification


class FailureError(Exception):
    """Base of the exceptions a handler raises to describe its failure.

    This base sends no class (the service's policy decides); its subclasses
    :class:`TransientError`, :class:`RecoverableError` and :class:`PermanentError` send theirs.

    Args:
        message: what went wrong (reported as the failure message).
        error_code: machine-readable code, e.g. ``UPSTREAM_TIMEOUT``; defaults to the class name.
        retry_after: do not retry sooner than this many seconds (a Retry-After hint).
        http_status: HTTP status of the failed call, if any.
    """

    error_class: ErrorClass = ErrorClass.UNSPECIFIED

    def __init__(
        self,
        message: str = "",
        *,
        error_code: str = "",
        retry_after: Optional[float] = None,
        http_status: Optional[int] = None,
    ):
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.retry_after = retry_after
        self.http_status = http_status

    def to_failure(self) -> Failure:
        """The :class:`~retryd.types.Failure` this exception reports."""
        return Failure(
            error_code=self.error_code,
            error_class=self.error_class,
            message=self.message or type(self).__name__,
            http_status=self.http_status or 0,
            retry_after=self.retry_after,
        )


class TransientError(FailureError):
    """A blip: retry soon with exponential backoff."""

    error_class = ErrorClass.TRANSIENT


class RecoverableError(FailureError):
    """A dependency degraded for a while: retry on the slower recoverable cadence."""

    error_class = ErrorClass.RECOVERABLE


class PermanentError(FailureError):
    """Will never succeed: dead-letter at once."""

    error_class = ErrorClass.PERMANENT


def parse_retry_after(value: Union[str, int, float, None], *, now: Optional[_dt.datetime] = None) -> Optional[float]:
    """Parse a Retry-After header (delay-seconds or an HTTP-date) into seconds, or None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


class HttpError(FailureError):
    """A failed HTTP call, reported without a class: the service's policy classifies it (by
    error code, ``HTTP_<status>`` by default, then by HTTP status). Build one with
    :func:`http_error`."""


def http_error(
    status: int,
    retry_after: Union[str, int, float, None] = None,
    *,
    message: str = "",
    error_code: str = "",
) -> Optional[HttpError]:
    """The failure of an HTTP call that answered ``status`` (and a Retry-After header).

    Returns None for statuses below 400 (not a failure). The error code defaults to
    ``HTTP_<status>``; no class is sent, so the service's rules decide (by default 408, 429, 500,
    502, 503, 504 → TRANSIENT, other 4xx, 501, 505 → PERMANENT). Raise the result:
    ``raise http_error(resp.status_code, resp.headers.get("Retry-After"))``. To decide the class
    yourself, raise :class:`TransientError`/:class:`PermanentError` with ``http_status=``.
    """
    if status < 400:
        return None
    return HttpError(
        message or f"HTTP {status}",
        error_code=error_code or f"HTTP_{status}",
        retry_after=parse_retry_after(retry_after),
        http_status=status,
    )


# The name of http_error before the server owned the taxonomy; it no longer classifies.
classify_http = http_error


def _header(headers: Any, name: str) -> Optional[str]:
    try:
        return headers.get(name)
    except Exception:
        return None


def failure_from_exception(exc: BaseException) -> Failure:
    """The :class:`~retryd.types.Failure` that reports an exception.

    A :class:`FailureError` reports what it carries (a class only for Transient, Recoverable and
    Permanent errors). ``requests`` and ``httpx`` HTTP errors (when installed) report their
    status, Retry-After and ``HTTP_<status>``. Anything else (timeouts, connection errors too) is
    reported with the exception's class name as the error code. None of these sends a class:
    the service's policy decides.
    """
    if isinstance(exc, FailureError):
        return exc.to_failure()
    mapped = _from_http_libraries(exc)
    if mapped is not None:
        return mapped.to_failure()
    return Failure(error_code=type(exc).__name__, message=str(exc) or type(exc).__name__)


def _from_http_libraries(exc: BaseException) -> Optional[HttpError]:
    try:  # requests
        import requests  # type: ignore[import-untyped]

        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            r = exc.response
            return http_error(r.status_code, _header(r.headers, "Retry-After"), message=str(exc))
    except ImportError:
        pass
    try:  # httpx
        import httpx  # type: ignore[import-not-found]

        if isinstance(exc, httpx.HTTPStatusError):
            r = exc.response
            return http_error(r.status_code, _header(r.headers, "Retry-After"), message=str(exc))
    except ImportError:
        pass
    return None


def to_failure(error: Union[BaseException, Failure, str]) -> Failure:
    """Accept a Failure, an exception or a plain message and return a Failure."""
    if isinstance(error, Failure):
        return error
    if isinstance(error, BaseException):
        return failure_from_exception(error)
    return Failure(message=str(error))


__all__: Tuple[str, ...] = (
    "RetrydError",
    "InvalidArgumentError",
    "NotFoundError",
    "LeaseLostError",
    "ResourceExhaustedError",
    "UnavailableError",
    "DeadlineExceededError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "from_rpc_error",
    "FailureError",
    "TransientError",
    "RecoverableError",
    "PermanentError",
    "HttpError",
    "parse_retry_after",
    "http_error",
    "classify_http",
    "failure_from_exception",
    "to_failure",
)
