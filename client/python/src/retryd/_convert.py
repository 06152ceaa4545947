"""Conversion between the public dataclasses and the generated protobuf messages (private)."""

from __future__ import annotations

import datetime as _dt
from typing import Optional

from google.protobuf import duration_pb2, timestamp_pb2

from retryd import types as t
from retryd.v1 import envelope_pb2, retry_service_pb2

_MAX_MESSAGE = 4096


def ts_to_dt(ts: timestamp_pb2.Timestamp, present: bool = True) -> Optional[_dt.datetime]:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return _dt.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=_dt.timezone.utc)


def dt_to_ts(d: _dt.datetime) -> timestamp_pb2.Timestamp:
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(d.astimezone(_dt.timezone.utc))
    return ts


def seconds_to_duration(s: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    whole = int(s)
    d.seconds = whole
    d.nanos = int(round((s - whole) * 1e9))
    return d


def duration_to_seconds(d: duration_pb2.Duration, present: bool = True) -> Optional[float]:
    if not present:
        return None
    return d.seconds + d.nanos / 1e9


def failure_to_pb(f: t.Failure) -> envelope_pb2.Failure:
    msg = f.message
    if len(msg.encode("utf-8", "replace")) > _MAX_MESSAGE:
        msg = msg.encode("utf-8", "replace")[: _MAX_MESSAGE - 3].decode("utf-8", "ignore") + "..."
    pb = envelope_pb2.Failure(
        error_code=f.error_code[:128],
        error_class=int(f.error_class),
        message=msg,
        http_status=int(f.http_status or 0),
    )
    if f.retry_after is not None:
        pb.retry_after.CopyFrom(seconds_to_duration(max(0.0, float(f.retry_after))))
    return pb


def failure_from_pb(pb: envelope_pb2.Failure) -> t.Failure:
    return t.Failure(
        error_code=pb.error_code,
        error_class=t.ErrorClass(pb.error_class),
        message=pb.message,
        http_status=pb.http_status,
        retry_after=duration_to_seconds(pb.retry_after, pb.HasField("retry_after")),
    )


def envelope_to_pb(e: t.Envelope) -> envelope_pb2.Envelope:
    payload = e.payload.encode("utf-8") if isinstance(e.payload, str) else bytes(e.payload)
    pb = envelope_pb2.Envelope(
        service=e.service,
        message_id=e.message_id,
        trace_id=e.trace_id,
        attempt=e.attempt,
        payload=payload,
        content_type=e.content_type,
        schema_version=e.schema_version,
        source=e.source,
        headers=dict(e.headers),
    )
    if e.first_seen_at is not None:
        pb.first_seen_at.CopyFrom(dt_to_ts(e.first_seen_at))
    return pb


def envelope_from_pb(pb: envelope_pb2.Envelope) -> t.Envelope:
    return t.Envelope(
        service=pb.service,
        message_id=pb.message_id,
        payload=pb.payload,
        trace_id=pb.trace_id,
        attempt=pb.attempt,
        first_seen_at=ts_to_dt(pb.first_seen_at, pb.HasField("first_seen_at")),
        content_type=pb.content_type,
        schema_version=pb.schema_version,
        source=pb.source,
        headers=dict(pb.headers),
        state=t.EnvelopeState(pb.state),
        max_attempts=pb.max_attempts,
        next_retry_at=ts_to_dt(pb.next_retry_at, pb.HasField("next_retry_at")),
        last_error=failure_from_pb(pb.last_error) if pb.HasField("last_error") else None,
        history=tuple(
            t.AttemptRecord(
                attempt=h.attempt,
                failed_at=ts_to_dt(h.failed_at, h.HasField("failed_at")),
                error_code=h.error_code,
                error_class=t.ErrorClass(h.error_class),
                message=h.message,
                delay=duration_to_seconds(h.delay, h.HasField("delay")),
            )
            for h in pb.history
        ),
        dead_letter_reason=t.DeadLetterReason(pb.dead_letter_reason),
        dead_lettered_at=ts_to_dt(pb.dead_lettered_at, pb.HasField("dead_lettered_at")),
        lease_expires_at=ts_to_dt(pb.lease_expires_at, pb.HasField("lease_expires_at")),
        created_at=ts_to_dt(pb.created_at, pb.HasField("created_at")),
        updated_at=ts_to_dt(pb.updated_at, pb.HasField("updated_at")),
        retry_life_started_at=ts_to_dt(
            pb.retry_life_started_at, pb.HasField("retry_life_started_at")
        ),
    )


def decision_from_pb(pb: envelope_pb2.Decision) -> t.Decision:
    return t.Decision(
        kind=t.DecisionKind(pb.kind),
        reason=t.DeadLetterReason(pb.reason),
        next_retry_at=ts_to_dt(pb.next_retry_at, pb.HasField("next_retry_at")),
        attempt=pb.attempt,
        duplicate=pb.duplicate,
        error_class=t.ErrorClass(pb.error_class),
        state=t.EnvelopeState(pb.state),
        delay=duration_to_seconds(pb.delay, pb.HasField("delay")),
    )


def lease_request(
    service: str, max_messages: int, visibility_timeout: Optional[float], wait_time: float
) -> retry_service_pb2.LeaseRequest:
    req = retry_service_pb2.LeaseRequest(service=service, max_messages=max_messages)
    if visibility_timeout is not None:
        req.visibility_timeout.CopyFrom(seconds_to_duration(visibility_timeout))
    if wait_time:
        req.wait_time.CopyFrom(seconds_to_duration(min(wait_time, 20.0)))
    return req


def lease_from_pb(pb: retry_service_pb2.LeaseResponse) -> t.LeaseResult:
    return t.LeaseResult(
        envelopes=tuple(
            t.LeasedEnvelope(
                envelope=envelope_from_pb(le.envelope),
                lease_token=le.lease_token,
                lease_expires_at=ts_to_dt(le.lease_expires_at, le.HasField("lease_expires_at")),
            )
            for le in pb.envelopes
        ),
        circuit_state=t.CircuitState(pb.circuit_state),
    )


def circuit_from_pb(pb: retry_service_pb2.GetCircuitResponse) -> t.Circuit:
    return t.Circuit(
        state=t.CircuitState(pb.state),
        since=ts_to_dt(pb.since, pb.HasField("since")),
        next_probe_at=ts_to_dt(pb.next_probe_at, pb.HasField("next_probe_at")),
        failure_rate=pb.failure_rate,
    )
