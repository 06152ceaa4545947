"""retryd.celery's pure parts: the payload encoding and the message_id of a task."""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("celery")

from celery import Celery  # noqa: E402

from retryd.celery import RetrydTask, decode_payload, encode_payload  # noqa: E402


def test_payload_round_trip_keeps_task_identity_and_arguments():
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    p = encode_payload("send_email", "tid-1", (42, "a@b.c"), {"at": when})
    call = decode_payload(p)
    assert call["task"] == "send_email" and call["id"] == "tid-1"
    assert call["args"] == [42, "a@b.c"] and call["kwargs"]["at"] == when


@pytest.mark.parametrize("payload", [b"{}", b"[]", b'{"task": "x"}', b"not json"])
def test_payload_that_is_not_a_task_call_is_refused(payload):
    with pytest.raises(ValueError):
        decode_payload(payload)


def test_message_id_is_the_task_id_or_the_tasks_key():
    app = Celery("unit", broker="memory://")

    @app.task(base=RetrydTask, retryd_service="s")
    def plain(n):
        return n

    @app.task(base=RetrydTask, retryd_service="s", retryd_key=lambda args, kwargs: f"order-{args[0]}")
    def keyed(n):
        return n

    assert plain._message_id("tid-1", (7,), {}) == "tid-1"
    assert keyed._message_id("tid-1", (7,), {}) == "order-7"
    assert plain(3) == 3  # a direct call runs the function, nothing else
