"""``report_failure``: hand a message's first failure to retryd from an existing consumer loop
(Kafka, SQS, Celery, cron), then move on.

Example (Kafka)::

    for msg in consumer:
        try:
            process(msg.value)
        except Exception as exc:
            retryd.report_failure("billing", f"{msg.topic}-{msg.partition}-{msg.offset}", exc,
                                  payload=msg.value, source=msg.topic)
        consumer.commit()
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Mapping, Optional, Union

from retryd.client import Client
from retryd.types import Decision, Envelope, Failure

_default_client: Optional[Client] = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client used when none is passed (from ``$RETRYD_ADDR``/``$RETRYD_TOKEN``)."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client()
        return _default_client


def report_failure(
    service: str,
    message_id: str,
    error: Union[BaseException, Failure, str],
    *,
    payload: Union[bytes, str] = b"",
    client: Optional[Client] = None,
    attempt: int = 1,
    trace_id: str = "",
    first_seen_at: Optional[_dt.datetime] = None,
    content_type: str = "",
    schema_version: str = "",
    source: str = "",
    headers: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
) -> Decision:
    """Report the first failure of a message and return retryd's decision.

    Idempotent on ``(service, message_id)``: re-sending answers ``duplicate=True`` and counts
    nothing twice, so it is safe to call again after a crash. ``error`` is reported by
    :func:`retryd.failure_from_exception` (a class only for ``TransientError`` and its kin).

    Args:
        attempt: attempts already made in process, the failed one included.
        client: the client to use; by default a shared one from the environment.
    """
    env = Envelope(
        service=service,
        message_id=message_id,
        payload=payload.encode("utf-8") if isinstance(payload, str) else payload,
        attempt=attempt,
        trace_id=trace_id,
        first_seen_at=first_seen_at,
        content_type=content_type,
        schema_version=schema_version,
        source=source,
        headers=dict(headers or {}),
    )
    return (client or default_client()).report_failure(env, error, timeout=timeout)
