"""retryd.kafka: a record survives the trip through an envelope (what the retry Worker rebuilds)."""

import pytest

pytest.importorskip("confluent_kafka")  # the `kafka` extra; scripts/test-kafka.sh installs it

import retryd  # noqa: E402
from retryd import kafka  # noqa: E402


def test_record_round_trips_through_envelope_headers():
    rec = kafka.Record(topic="orders", partition=2, offset=41, key=b"\x00order-7", value=b'{"order": 7}',
                       headers={"trace": b"abc", "bin": b"\xff\x00"})
    assert kafka.default_message_id(rec) == "orders/2/41"
    env = retryd.Envelope(service="s", message_id="m", payload=rec.value, attempt=1,
                          headers=kafka.envelope_headers(rec))
    back = kafka.record_from_envelope(env)
    assert back == kafka.Record(topic="orders", partition=2, offset=41, key=b"\x00order-7",
                                value=b'{"order": 7}', headers={"trace": b"abc", "bin": b"\xff\x00"}, attempt=2)


def test_record_without_key_keeps_none():
    rec = kafka.Record(topic="t", partition=0, offset=0, key=None, value=b"v")
    back = kafka.record_from_envelope(retryd.Envelope(service="s", message_id="m", payload=b"v",
                                                      headers=kafka.envelope_headers(rec)))
    assert back.key is None and back.attempt == 1
