"""retryd: Python client and worker for the retryd retry and dead-letter control plane.

* :class:`Client` / :class:`AsyncClient` — every ``RetryService`` call, typed results.
* :class:`Worker` — long-polls due retries, runs a handler, reports the outcome.
* :func:`report_failure` — hand a first failure over from an existing consumer loop.
* :class:`TransientError`, :class:`RecoverableError`, :class:`PermanentError` — a class the
  application chose; :func:`http_error` — the facts of a failed HTTP call, classified by the
  server's policy.
"""

from retryd.aio import AsyncClient
from retryd.client import Client
from retryd.consumer import report_failure
from retryd.errors import (
    DeadlineExceededError,
    FailureError,
    InvalidArgumentError,
    LeaseLostError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    RecoverableError,
    ResourceExhaustedError,
    RetrydError,
    TransientError,
    UnauthenticatedError,
    UnavailableError,
    HttpError,
    classify_http,
    failure_from_exception,
    http_error,
    parse_retry_after,
)
from retryd.types import (
    AttemptRecord,
    Circuit,
    CircuitState,
    DeadLetterReason,
    Decision,
    DecisionKind,
    Envelope,
    EnvelopeState,
    ErrorClass,
    Failure,
    LeasedEnvelope,
    LeaseResult,
    TLSConfig,
)
from retryd.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "Client", "Worker", "report_failure",
    "RetrydError", "InvalidArgumentError", "NotFoundError", "LeaseLostError",
    "ResourceExhaustedError", "UnavailableError", "DeadlineExceededError",
    "UnauthenticatedError", "PermissionDeniedError",
    "FailureError", "TransientError", "RecoverableError", "PermanentError",
    "HttpError", "http_error", "classify_http", "parse_retry_after", "failure_from_exception",
    "AttemptRecord", "Circuit", "CircuitState", "DeadLetterReason", "Decision", "DecisionKind",
    "Envelope", "EnvelopeState", "ErrorClass", "Failure", "LeasedEnvelope", "LeaseResult",
    "TLSConfig",
]
