"""retryd: Python client and worker for the retryd retry and dead-letter control plane.

* :class:`Client` / :class:`AsyncClient` — every ``RetryService`` call, typed results.
* :class:`Worker` — long-polls due retries, runs a handler, reports the outcome.
* :func:`report_failure` — hand a first failure over from an existing consumer loop.
* :class:`TransientError`, :class:`RecoverableError`, :class:`PermanentError`,
  :func:`classify_http` — classify failures.
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
    classify_http,
    failure_from_exception,
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
    "classify_http", "parse_retry_after", "failure_from_exception",
    "AttemptRecord", "Circuit", "CircuitState", "DeadLetterReason", "Decision", "DecisionKind",
    "Envelope", "EnvelopeState", "ErrorClass", "Failure", "LeasedEnvelope", "LeaseResult",
    "TLSConfig",
]
