"""The asyncio client (grpc.aio) against a real retryd."""

from __future__ import annotations

import asyncio

import pytest

import retryd


async def test_async_cycle(server, service):
    async with retryd.AsyncClient(target=server.target) as c:
        d = await c.report_failure(retryd.Envelope(service, "a1", b"p"), retryd.TransientError("t", error_code="T"))
        assert d.scheduled and d.attempt == 1
        le = None
        for _ in range(10):
            r = await c.lease(service, wait_time=1.0)
            if r.envelopes:
                le = r.envelopes[0]
                break
        assert le is not None and le.envelope.payload == b"p"
        assert await c.extend_lease(le.lease_token, 30) is not None
        d = await c.report_failure(retryd.Envelope(service, "a1"), retryd.PermanentError("no", error_code="P"),
                                   lease_token=le.lease_token)
        assert d.dead_lettered and d.reason == retryd.DeadLetterReason.NON_RETRYABLE
        await c.record_outcomes(service, successes=1)
        assert (await c.get_circuit(service)).state == retryd.CircuitState.CLOSED
        with pytest.raises(retryd.LeaseLostError):
            await c.report_success(service, le.lease_token)


async def test_async_concurrent_calls(server, service):
    async with retryd.AsyncClient(target=server.target) as c:
        ds = await asyncio.gather(*[
            c.report_failure(retryd.Envelope(service, f"m{i}"), retryd.TransientError("t")) for i in range(20)
        ])
        assert all(d.scheduled for d in ds)
