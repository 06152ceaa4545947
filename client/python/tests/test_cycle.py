"""The full retry cycle with the sync client against a real retryd."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import retryd
from retryd import DeadLetterReason, DecisionKind, EnvelopeState, ErrorClass


def lease_one(client: retryd.Client, service: str, timeout: float = 5.0, visibility: float = 30.0):
    """Long-poll until one envelope of `service` is leased."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.lease(service, wait_time=1.0, visibility_timeout=visibility)
        if r.envelopes:
            assert len(r.envelopes) == 1
            return r.envelopes[0]
    pytest.fail(f"nothing leased for {service} within {timeout}s")


def test_full_cycle_first_failure_retry_fails_then_succeeds(server, client, service):
    env = retryd.Envelope(
        service=service, message_id="order-1", payload=b'{"order": 1}', trace_id="t-1",
        content_type="application/json", schema_version="v1", source="orders", headers={"tenant": "acme"},
    )
    d = client.report_failure(env, retryd.TransientError("upstream timed out", error_code="UPSTREAM_TIMEOUT"))
    assert d.kind == DecisionKind.SCHEDULED and d.scheduled
    assert d.attempt == 1 and not d.duplicate
    assert d.error_class == ErrorClass.TRANSIENT
    assert d.state == EnvelopeState.SCHEDULED
    assert d.delay == pytest.approx(0.2, abs=0.01)
    assert d.next_retry_at is not None and d.next_retry_at.tzinfo is not None

    # Re-sent first failure: the same decision, nothing counted twice.
    again = client.report_failure(env, retryd.TransientError("upstream timed out", error_code="UPSTREAM_TIMEOUT"))
    assert again.duplicate and again.attempt == 1

    le = lease_one(client, service)
    assert le.envelope.message_id == "order-1"
    assert le.envelope.payload == b'{"order": 1}'
    assert le.envelope.headers == {"tenant": "acme"}
    assert le.envelope.attempt == 1
    assert le.envelope.state == EnvelopeState.LEASED
    assert le.envelope.last_error is not None and le.envelope.last_error.error_code == "UPSTREAM_TIMEOUT"
    assert le.lease_token and le.lease_expires_at > dt.datetime.now(dt.timezone.utc)

    # The retry fails again.
    d2 = client.report_failure(
        retryd.Envelope(service, "order-1"), retryd.TransientError("still down", error_code="UPSTREAM_TIMEOUT"),
        lease_token=le.lease_token,
    )
    assert d2.scheduled and d2.attempt == 2
    assert d2.delay == pytest.approx(0.4, abs=0.01)

    # The next retry succeeds.
    le2 = lease_one(client, service)
    assert le2.envelope.attempt == 2
    client.report_success(service, le2.lease_token)
    assert server.get_envelope(service, "order-1").state == EnvelopeState.SUCCEEDED

    # The token is spent.
    with pytest.raises(retryd.LeaseLostError):
        client.report_success(service, le2.lease_token)
    # A late duplicate of the first failure is still answered duplicate.
    late = client.report_failure(env, "late")
    assert late.duplicate and late.state == EnvelopeState.SUCCEEDED
    assert late.next_retry_at is None  # Nothing is due: no made-up time.


def test_exhaustion_goes_to_dlq(server, client, service):
    d = client.report_failure(retryd.Envelope(service, "m"), retryd.TransientError("x", error_code="E"))
    assert d.attempt == 1
    le = lease_one(client, service)
    d = client.report_failure(retryd.Envelope(service, "m"), retryd.TransientError("x", error_code="E"),
                              lease_token=le.lease_token)
    assert d.scheduled and d.attempt == 2
    le = lease_one(client, service)
    d = client.report_failure(retryd.Envelope(service, "m"), retryd.TransientError("x", error_code="E"),
                              lease_token=le.lease_token)
    assert d.dead_lettered and d.reason == DeadLetterReason.RETRY_EXHAUSTED and d.attempt == 3
    stored = server.get_envelope(service, "m")
    assert stored.state == EnvelopeState.DEAD_LETTERED
    assert stored.dead_letter_reason == DeadLetterReason.RETRY_EXHAUSTED
    assert [h.attempt for h in stored.history] == [1, 2, 3]


def test_permanent_goes_to_dlq_at_once(server, client, service):
    d = client.report_failure(retryd.Envelope(service, "bad"), retryd.PermanentError("missing field", error_code="INVALID_SCHEMA"))
    assert d.dead_lettered and d.reason == DeadLetterReason.NON_RETRYABLE
    assert d.error_class == ErrorClass.PERMANENT
    # An HTTP 400 reported by the helper is made permanent by the server.
    d = client.report_failure(retryd.Envelope(service, "bad-400"), retryd.http_error(400, message="bad request"))
    assert d.dead_lettered and d.reason == DeadLetterReason.NON_RETRYABLE
    # An unclassified failure with an HTTP status is classified by the server (422 → PERMANENT).
    d = client.report_failure(retryd.Envelope(service, "bad-422"), retryd.Failure(error_code="X", http_status=422))
    assert d.dead_lettered and d.error_class == ErrorClass.PERMANENT
    assert client.lease(service, wait_time=0.5).envelopes == ()


def test_retry_after_is_honored(server, client, service):
    err = retryd.http_error(429, "2")
    assert err.retry_after == 2.0
    t0 = dt.datetime.now(dt.timezone.utc)
    d = client.report_failure(retryd.Envelope(service, "slow"), err)
    assert d.scheduled and d.delay is not None and d.delay >= 2.0
    assert d.next_retry_at >= t0 + dt.timedelta(seconds=1.9)
    # Not due before the Retry-After passed (the policy alone would retry after 0.2 s).
    assert client.lease(service, wait_time=1.0).envelopes == ()
    le = lease_one(client, service, timeout=5)
    assert dt.datetime.now(dt.timezone.utc) >= t0 + dt.timedelta(seconds=1.9)
    client.report_success(service, le.lease_token)


def test_the_servers_policy_classifies_http_failures(server, client, service):
    # One table, on the server: by default 503 is TRANSIENT and 425 (a 4xx) PERMANENT, whatever
    # the library thinks; a policy rule on HTTP_503 makes a client-reported 503 PERMANENT.
    d = client.report_failure(retryd.Envelope(service, "503"), retryd.http_error(503))
    assert d.scheduled and d.error_class == ErrorClass.TRANSIENT
    d = client.report_failure(retryd.Envelope(service, "425"), retryd.http_error(425))
    assert d.dead_lettered and d.error_class == ErrorClass.PERMANENT
    ruled = "taxonomy." + service
    d = client.report_failure(retryd.Envelope(ruled, "503"), retryd.http_error(503, "1"))
    assert d.dead_lettered and d.reason == DeadLetterReason.NON_RETRYABLE
    assert d.error_class == ErrorClass.PERMANENT
    # A class the application chose wins over the rule.
    d = client.report_failure(retryd.Envelope(ruled, "503-chosen"), retryd.TransientError("down", http_status=503))
    assert d.scheduled and d.error_class == ErrorClass.TRANSIENT


def test_the_servers_policy_classifies_requests_errors(server, client, service):
    requests = pytest.importorskip("requests")
    r = requests.Response()
    r.status_code = 503
    d = client.report_failure(retryd.Envelope("taxonomy." + service, "503"), requests.HTTPError("down", response=r))
    assert d.dead_lettered and d.error_class == ErrorClass.PERMANENT


def test_an_envelope_over_4_mib_is_leased_and_delivered(server, client, service):
    # The server accepts payloads up to 8 MiB (FAST_POLICY); a lease always holds one envelope,
    # so the client must receive more than gRPC's default 4 MiB, or the lease commits, the
    # response fails here and the envelope is never delivered.
    payload = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB
    d = client.report_failure(retryd.Envelope(service, "big", payload=payload), retryd.TransientError("t"))
    assert d.scheduled
    le = lease_one(client, service, timeout=5)
    assert le.envelope.message_id == "big" and le.envelope.payload == payload
    client.report_success(service, le.lease_token)


def test_extend_lease_circuit_outcomes_and_errors(server, client, service):
    client.report_failure(retryd.Envelope(service, "x"), retryd.TransientError("t"))
    le = lease_one(client, service, visibility=5)
    new_expiry = client.extend_lease(le.lease_token, 60)
    assert new_expiry > le.lease_expires_at
    client.report_success(service, le.lease_token)

    client.record_outcomes(service, successes=10, failures=1)
    c = client.get_circuit(service)
    assert c.state == retryd.CircuitState.CLOSED
    assert 0.0 <= c.failure_rate <= 1.0

    with pytest.raises(retryd.InvalidArgumentError) as ei:
        client.report_failure(retryd.Envelope("Not A Service!", "x"), "boom")
    assert "service" in ei.value.message
    with pytest.raises(retryd.LeaseLostError):
        client.extend_lease("no-such-token", 10)
    with pytest.raises(retryd.RetrydError):
        client.lease(service, max_messages=-1)


def test_report_failure_helper_for_consumer_loops(server, client, service):
    # An existing consumer loop: the first failure is handed over and the loop moves on.
    for i, exc in enumerate([TimeoutError("read timed out"), ValueError("bad json")]):
        d = retryd.report_failure(service, f"offset-{i}", exc, payload=b"{}", client=client, source="topic-a")
        assert d.scheduled and d.attempt == 1
    stored = server.get_envelope(service, "offset-1")
    assert stored.source == "topic-a" and stored.last_error.error_code == "ValueError"
    assert server.get_envelope(service, "offset-0").last_error.error_class == ErrorClass.TRANSIENT


def test_unreachable_server_is_unavailable():
    with retryd.Client(target="127.0.0.1:1", timeout=1) as c:
        with pytest.raises((retryd.UnavailableError, retryd.DeadlineExceededError)):
            c.get_circuit("x")


def test_token_metadata_is_sent(server, service):
    # No tokens configured on this server: a token is simply carried; calls still work.
    with retryd.Client(target=server.target, token="secret") as c:
        assert c._metadata == (("authorization", "Bearer secret"),)
        assert c.get_circuit(service).state == retryd.CircuitState.CLOSED
