"""Typed, immutable results and inputs of the retryd client (plain dataclasses, no protobuf)."""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple


class ErrorClass(enum.IntEnum):
    """The failure taxonomy (``retryd.v1.ErrorClass``)."""

    UNSPECIFIED = 0
    TRANSIENT = 1
    RECOVERABLE = 2
    PERMANENT = 3


class EnvelopeState(enum.IntEnum):
    """Where an envelope is in its life (``retryd.v1.EnvelopeState``)."""

    UNSPECIFIED = 0
    SCHEDULED = 1
    LEASED = 2
    DEAD_LETTERED = 3
    SUCCEEDED = 4


class DecisionKind(enum.IntEnum):
    """What retryd decided about a failure (``retryd.v1.DecisionKind``)."""

    UNSPECIFIED = 0
    SCHEDULED = 1
    DEAD_LETTERED = 2


class DeadLetterReason(enum.IntEnum):
    """Why an envelope was dead-lettered (``retryd.v1.DeadLetterReason``)."""

    UNSPECIFIED = 0
    NON_RETRYABLE = 1
    RETRY_EXHAUSTED = 2
    DEADLINE_EXCEEDED = 3
    BUDGET_EXHAUSTED = 4


class CircuitState(enum.IntEnum):
    """A service's fleet-wide circuit breaker (``retryd.v1.CircuitState``)."""

    UNSPECIFIED = 0
    CLOSED = 1
    OPEN = 2
    HALF_OPEN = 3


@dataclass(frozen=True)
class Failure:
    """What went wrong this time.

    Attributes:
        error_code: machine-readable code such as ``UPSTREAM_TIMEOUT`` (at most 128 bytes).
        error_class: the worker's own classification; ``UNSPECIFIED`` lets the policy decide.
        message: human-readable message (at most 4096 bytes; longer is truncated by the client).
        http_status: HTTP status of the failed call, 0 when none.
        retry_after: a Retry-After hint in seconds, or None.
    """

    error_code: str = ""
    error_class: ErrorClass = ErrorClass.UNSPECIFIED
    message: str = ""
    http_status: int = 0
    retry_after: Optional[float] = None


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt in an envelope's history."""

    attempt: int
    failed_at: Optional[_dt.datetime]
    error_code: str
    error_class: ErrorClass
    message: str
    delay: Optional[float]


@dataclass(frozen=True)
class Envelope:
    """A message a worker failed to process.

    The first ten fields belong to the worker; the rest are filled in by the server (on leased
    envelopes) and ignored when reporting.
    """

    service: str
    message_id: str
    payload: bytes = b""
    trace_id: str = ""
    attempt: int = 0
    first_seen_at: Optional[_dt.datetime] = None
    content_type: str = ""
    schema_version: str = ""
    source: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    # Server-owned.
    state: EnvelopeState = EnvelopeState.UNSPECIFIED
    max_attempts: int = 0
    next_retry_at: Optional[_dt.datetime] = None
    last_error: Optional[Failure] = None
    history: Tuple[AttemptRecord, ...] = ()
    dead_letter_reason: DeadLetterReason = DeadLetterReason.UNSPECIFIED
    dead_lettered_at: Optional[_dt.datetime] = None
    lease_expires_at: Optional[_dt.datetime] = None
    created_at: Optional[_dt.datetime] = None
    updated_at: Optional[_dt.datetime] = None
    # When the current retry life began: first_seen_at, or the replay that reset the attempts
    # (max_retry_duration counts from here).
    retry_life_started_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class Decision:
    """retryd's answer to a reported failure."""

    kind: DecisionKind
    reason: DeadLetterReason
    next_retry_at: Optional[_dt.datetime]
    attempt: int
    duplicate: bool
    error_class: ErrorClass
    state: EnvelopeState
    delay: Optional[float]

    @property
    def scheduled(self) -> bool:
        """True when another attempt is scheduled."""
        return self.kind == DecisionKind.SCHEDULED

    @property
    def dead_lettered(self) -> bool:
        """True when the envelope went to the dead-letter queue."""
        return self.kind == DecisionKind.DEAD_LETTERED


@dataclass(frozen=True)
class LeasedEnvelope:
    """A due retry handed out under a lease. This delivery is attempt ``envelope.attempt + 1``."""

    envelope: Envelope
    lease_token: str
    lease_expires_at: Optional[_dt.datetime]


@dataclass(frozen=True)
class LeaseResult:
    """The answer to :meth:`Client.lease`."""

    envelopes: Tuple[LeasedEnvelope, ...]
    circuit_state: CircuitState


@dataclass(frozen=True)
class Circuit:
    """The circuit state of a service."""

    state: CircuitState
    since: Optional[_dt.datetime]
    next_probe_at: Optional[_dt.datetime]
    failure_rate: float


@dataclass(frozen=True)
class TLSConfig:
    """TLS settings for the channel.

    Attributes:
        ca_file: PEM bundle to verify the server with; None uses the system roots.
        cert_file: client certificate (PEM) for mTLS.
        key_file: client private key (PEM) for mTLS.
        server_name: override the name checked against the server certificate.
    """

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None
