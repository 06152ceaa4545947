"""The synchronous retryd client: one method per ``retryd.v1.RetryService`` RPC."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Optional, Sequence, Tuple, Union

import grpc

from retryd import _channel, _convert
from retryd.errors import from_rpc_error, to_failure
from retryd.types import Circuit, Decision, Envelope, Failure, LeaseResult, TLSConfig
from retryd.v1 import retry_service_pb2 as pb
from retryd.v1 import retry_service_pb2_grpc as pb_grpc

FailureLike = Union[Failure, BaseException, str]


class Client:
    """A blocking client for retryd's ``RetryService``.

    Use it as a context manager or call :meth:`close`. It is thread-safe (one gRPC channel).

    Args:
        target: ``host:port``; defaults to ``$RETRYD_ADDR``, then ``127.0.0.1:50051``.
        token: bearer token sent as ``authorization: Bearer …``; defaults to ``$RETRYD_TOKEN``.
        tls: TLS settings; None means plaintext.
        timeout: default deadline of a call, in seconds (Lease adds its wait time to it).
        channel_options: extra gRPC channel options. The channel accepts responses up to 66 MiB
            (``grpc.max_receive_message_length``; a value given here wins): a Lease holds at
            least one envelope, whose payload can be as large as the server allows (64 MiB).

    Every method raises :class:`retryd.RetrydError` (a subclass per status code) on failure.

    Example::

        with retryd.Client(target="127.0.0.1:50051") as c:
            d = c.report_failure(retryd.Envelope("billing", "order-42", b"{}"),
                                 retryd.TransientError("timeout", error_code="UPSTREAM_TIMEOUT"))
    """

    def __init__(
        self,
        *,
        target: Optional[str] = None,
        token: Optional[str] = None,
        tls: Optional[TLSConfig] = None,
        timeout: float = 10.0,
        channel_options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        self.target = _channel.resolve_target(target)
        self.timeout = timeout
        self._metadata = _channel.metadata(_channel.resolve_token(token))
        opts = _channel.options(tls, channel_options)
        if tls is not None:
            self._channel = grpc.secure_channel(self.target, _channel.credentials(tls), options=opts)
        else:
            self._channel = grpc.insecure_channel(self.target, options=opts)
        self._stub = pb_grpc.RetryServiceStub(self._channel)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel. Calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- RPCs -------------------------------------------------------------------------------------

    def _call(self, method: Any, request: Any, timeout: Optional[float]) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def report_failure(
        self,
        envelope: Envelope,
        failure: FailureLike,
        *,
        lease_token: str = "",
        timeout: Optional[float] = None,
    ) -> Decision:
        """Record a failure and return retryd's decision.

        Without ``lease_token`` this is the envelope's first failure (idempotent on
        ``(service, message_id)``: a re-send answers ``duplicate=True``). With a token it is the
        outcome of a leased retry. ``failure`` may be a :class:`Failure`, an exception (classified
        with :func:`retryd.failure_from_exception`) or a message.
        """
        req = pb.ReportFailureRequest(
            envelope=_convert.envelope_to_pb(envelope),
            failure=_convert.failure_to_pb(to_failure(failure)),
            lease_token=lease_token,
        )
        return _convert.decision_from_pb(self._call(self._stub.ReportFailure, req, timeout).decision)

    def lease(
        self,
        service: str,
        *,
        max_messages: int = 1,
        visibility_timeout: Optional[float] = 30.0,
        wait_time: float = 0.0,
        timeout: Optional[float] = None,
    ) -> LeaseResult:
        """Take up to ``max_messages`` due retries of ``service``, each under a lease of
        ``visibility_timeout`` seconds, long-polling up to ``wait_time`` seconds (at most 20)."""
        req = _convert.lease_request(service, max_messages, visibility_timeout, wait_time)
        t = (self.timeout if timeout is None else timeout) + min(wait_time, 20.0)
        return _convert.lease_from_pb(self._call(self._stub.Lease, req, t))

    def report_success(self, service: str, lease_token: str, *, timeout: Optional[float] = None) -> None:
        """A leased retry succeeded: the envelope is done."""
        self._call(self._stub.ReportSuccess, pb.ReportSuccessRequest(service=service, lease_token=lease_token), timeout)

    def extend_lease(
        self, lease_token: str, visibility_timeout: float = 30.0, *, timeout: Optional[float] = None
    ) -> Optional[_dt.datetime]:
        """Push a lease's expiry to now + ``visibility_timeout``; return the new expiry."""
        req = pb.ExtendLeaseRequest(
            lease_token=lease_token, visibility_timeout=_convert.seconds_to_duration(visibility_timeout)
        )
        resp = self._call(self._stub.ExtendLease, req, timeout)
        return _convert.ts_to_dt(resp.lease_expires_at, resp.HasField("lease_expires_at"))

    def record_outcomes(
        self, service: str, *, successes: int = 0, failures: int = 0, timeout: Optional[float] = None
    ) -> None:
        """Report batched counts of first attempts (feeds the retry budget and the circuit)."""
        req = pb.RecordOutcomesRequest(service=service, successes=successes, failures=failures)
        self._call(self._stub.RecordOutcomes, req, timeout)

    def get_circuit(self, service: str, *, timeout: Optional[float] = None) -> Circuit:
        """The circuit state of ``service``: should a worker even try?"""
        return _convert.circuit_from_pb(self._call(self._stub.GetCircuit, pb.GetCircuitRequest(service=service), timeout))

