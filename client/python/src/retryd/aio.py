"""The asyncio retryd client (``grpc.aio``): the same methods as :class:`retryd.Client`, awaitable.

Create and use an :class:`AsyncClient` on one event loop (grpc.aio objects are loop-bound)::

    async with retryd.AsyncClient(target="127.0.0.1:50051") as c:
        leased = await c.lease("billing", wait_time=5)
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Optional, Sequence, Tuple

import grpc
import grpc.aio

from retryd import _channel, _convert
from retryd.client import FailureLike
from retryd.errors import from_rpc_error, to_failure
from retryd.types import Circuit, Decision, Envelope, LeaseResult, TLSConfig
from retryd.v1 import retry_service_pb2 as pb
from retryd.v1 import retry_service_pb2_grpc as pb_grpc


class AsyncClient:
    """An asyncio client for retryd's ``RetryService``. See :class:`retryd.Client` for the args."""

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
            self._channel = grpc.aio.secure_channel(self.target, _channel.credentials(tls), options=opts)
        else:
            self._channel = grpc.aio.insecure_channel(self.target, options=opts)
        self._stub = pb_grpc.RetryServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Any, request: Any, timeout: Optional[float]) -> Any:
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None

    async def report_failure(
        self, envelope: Envelope, failure: FailureLike, *, lease_token: str = "", timeout: Optional[float] = None
    ) -> Decision:
        """Record a failure; see :meth:`retryd.Client.report_failure`."""
        req = pb.ReportFailureRequest(
            envelope=_convert.envelope_to_pb(envelope),
            failure=_convert.failure_to_pb(to_failure(failure)),
            lease_token=lease_token,
        )
        resp = await self._call(self._stub.ReportFailure, req, timeout)
        return _convert.decision_from_pb(resp.decision)

    async def lease(
        self,
        service: str,
        *,
        max_messages: int = 1,
        visibility_timeout: Optional[float] = 30.0,
        wait_time: float = 0.0,
        timeout: Optional[float] = None,
    ) -> LeaseResult:
        """Take due retries; see :meth:`retryd.Client.lease`."""
        req = _convert.lease_request(service, max_messages, visibility_timeout, wait_time)
        t = (self.timeout if timeout is None else timeout) + min(wait_time, 20.0)
        return _convert.lease_from_pb(await self._call(self._stub.Lease, req, t))

    async def report_success(self, service: str, lease_token: str, *, timeout: Optional[float] = None) -> None:
        """A leased retry succeeded."""
        await self._call(
            self._stub.ReportSuccess, pb.ReportSuccessRequest(service=service, lease_token=lease_token), timeout
        )

    async def extend_lease(
        self, lease_token: str, visibility_timeout: float = 30.0, *, timeout: Optional[float] = None
    ) -> Optional[_dt.datetime]:
        """Push a lease's expiry to now + ``visibility_timeout``; return the new expiry."""
        req = pb.ExtendLeaseRequest(
            lease_token=lease_token, visibility_timeout=_convert.seconds_to_duration(visibility_timeout)
        )
        resp = await self._call(self._stub.ExtendLease, req, timeout)
        return _convert.ts_to_dt(resp.lease_expires_at, resp.HasField("lease_expires_at"))

    async def record_outcomes(
        self, service: str, *, successes: int = 0, failures: int = 0, timeout: Optional[float] = None
    ) -> None:
        """Report batched first-attempt counts."""
        req = pb.RecordOutcomesRequest(service=service, successes=successes, failures=failures)
        await self._call(self._stub.RecordOutcomes, req, timeout)

    async def get_circuit(self, service: str, *, timeout: Optional[float] = None) -> Circuit:
        """The circuit state of ``service``."""
        resp = await self._call(self._stub.GetCircuit, pb.GetCircuitRequest(service=service), timeout)
        return _convert.circuit_from_pb(resp)
