"""retryd.kafka against a real Kafka broker (KRaft, started by scripts/kafka-broker.sh) and a real
retryd: 3000 records over 3 partitions, transient and permanent failures, a consumer killed with
-9 mid-stream and restarted. Runs when RETRYD_KAFKA_TESTS=1 (scripts/test-kafka.sh sets it)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pytest

import retryd
from retryd import DeadLetterReason, EnvelopeState
from retryd.v1 import admin_service_pb2, envelope_pb2

if os.environ.get("RETRYD_KAFKA_TESTS") != "1":
    pytest.skip("Kafka end-to-end tests run from scripts/test-kafka.sh (RETRYD_KAFKA_TESTS=1)",
                allow_module_level=True)

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
RECORDS = 3000
PARTITIONS = 3


@pytest.fixture(scope="module")
def broker():
    d = tempfile.mkdtemp(prefix="retryd-kafka-")
    t = time.monotonic()
    out = subprocess.run(["bash", str(REPO / "scripts" / "kafka-broker.sh"), "start", d],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.fail(f"the Kafka broker did not start: {out.stderr}")
    print(f"kafka broker started in {time.monotonic() - t:.1f} s")
    try:
        yield out.stdout.strip()
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "kafka-broker.sh"), "stop", d], timeout=60)


def wait_for(cond, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def read_journal(path: Path):
    """Events per record index: {'ok': [attempts], 'fail': [...], 'reported': [duplicate flags]}."""
    ev = collections.defaultdict(lambda: collections.defaultdict(list))
    if not path.exists():
        return ev
    for line in path.read_text().splitlines():
        kind, i, n = line.split()
        ev[int(i)][kind].append(int(n))
    return ev


def retried(events) -> bool:
    """A retry (attempt 2, or later when a lease held by the killed process expired) succeeded."""
    return any(n >= 2 for n in events["ok"])


def produce(bootstrap: str, topic: str):
    """Produces record i (value and key str(i)) to partition i % 3; returns i -> (partition, offset)."""
    where = {}

    def delivered(err, msg):
        assert err is None, err
        where[int(msg.value())] = (msg.partition(), msg.offset())

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        p.produce(topic, value=str(i).encode(), key=str(i).encode(), partition=i % PARTITIONS,
                  on_delivery=delivered)
        p.poll(0)
    assert p.flush(60) == 0
    getattr(p, "close", lambda: None)()  # confluent-kafka >= 2.10; older ones close when collected
    assert len(where) == RECORDS
    return where


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    del admin  # its handle would otherwise log reconnects after the broker stops


def committed(bootstrap: str, group: str, topic: str):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in parts}
    finally:
        c.close()


def start_consumer(bootstrap, topic, group, server, service, journal, log):
    return subprocess.Popen(
        [sys.executable, str(HERE / "kafka_proc.py"), bootstrap, topic, group, server.target, service,
         str(journal)],
        stdout=log, stderr=subprocess.STDOUT,
    )


def dead_letter_ids(server, service):
    ids, token = set(), ""
    while True:
        resp = server.admin.ListDeadLetters(
            admin_service_pb2.ListDeadLettersRequest(filter=envelope_pb2.Filter(service=service),
                                                     page_size=1000, page_token=token), timeout=10)
        for e in resp.dead_letters:
            assert e.dead_letter_reason == DeadLetterReason.NON_RETRYABLE, e
            ids.add(e.message_id)
        token = resp.next_page_token
        if not token:
            return ids


def test_kill_9_mid_stream_loses_no_failure(broker, server, service, tmp_path):
    topic, group = "orders-" + uuid.uuid4().hex[:8], "g-" + uuid.uuid4().hex[:8]
    create_topic(broker, topic)
    where = produce(broker, topic)
    mid = {i: f"{topic}/{p}/{o}" for i, (p, o) in where.items()}
    permanent = {i for i in range(RECORDS) if i % 50 == 0}
    transient = {i for i in range(RECORDS) if i % 7 == 0} - permanent
    succeed = set(range(RECORDS)) - permanent - transient

    journal = tmp_path / "journal"
    log = open(tmp_path / "consumer.log", "wb")
    proc = start_consumer(broker, topic, group, server, service, journal, log)
    try:
        # Kill -9 once about a third of the records ran (offsets partly committed, failures
        # partly reported, retries partly done).
        assert wait_for(lambda: sum(len(e["ok"]) + len(e["fail"]) for e in read_journal(journal).values()) >= 1000,
                        timeout=120, interval=0.02), (tmp_path / "consumer.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = read_journal(journal)
        done_before = sum(1 for e in before.values() if e["ok"] or e["reported"])
        assert done_before < RECORDS, "the consumer finished before the kill"
        commit_at_kill = committed(broker, group, topic)

        proc = start_consumer(broker, topic, group, server, service, journal, log)

        def finished():
            ev = read_journal(journal)
            return (all(ev[i]["ok"] for i in succeed)
                    and all(ev[i]["reported"] for i in permanent | transient)
                    and all(retried(ev[i]) for i in transient))

        def missing():
            ev = read_journal(journal)
            return {"not run": sorted(i for i in succeed if not ev[i]["ok"])[:20],
                    "not reported": sorted(i for i in permanent | transient if not ev[i]["reported"])[:20],
                    "not retried": sorted(i for i in transient if not retried(ev[i]))[:20],
                    "committed": committed(broker, group, topic),
                    "log": (tmp_path / "consumer.log").read_text()[-2000:]}

        # Every partition committed to its end, then every failure handed over and retried (the
        # Worker's retries run after the commits); bounded so that a lost record fails fast.
        per_partition = collections.Counter(p for p, _ in where.values())
        assert wait_for(lambda: committed(broker, group, topic) == dict(per_partition), timeout=150), missing()
        assert wait_for(finished, timeout=30, interval=0.2), missing()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()

    ev = read_journal(journal)
    # In-order commit: at the kill, every record below a partition's committed offset had
    # succeeded or had its failure acknowledged by retryd, and none of them ran from Kafka again.
    resume = {p: (o if o >= 0 else 0) for p, o in commit_at_kill.items()}
    for i, (p, o) in where.items():
        if o < resume[p]:
            assert before[i]["ok"] or before[i]["reported"], (i, p, o, before[i])
            assert [n for n in ev[i]["ok"] + ev[i]["fail"] if n == 1] == \
                [n for n in before[i]["ok"] + before[i]["fail"] if n == 1], (i, "read again below the commit")
        elif before[i]["reported"]:
            # Reported before the kill and not covered by a commit: read again, reported again,
            # and answered as a duplicate.
            assert 1 in ev[i]["reported"][len(before[i]["reported"]):], (i, ev[i])
    # Dead letters: exactly the permanent records, each NON_RETRYABLE.
    assert dead_letter_ids(server, service) == {mid[i] for i in permanent}
    # Transient records: failed from Kafka, handed over, retried by the Worker, succeeded. The
    # retry is attempt 2, or later when the killed process held its lease (an expired lease
    # counts as a failed attempt), and never ran from Kafka again as a success.
    for i in transient:
        env = server.get_envelope(service, mid[i])
        assert env.state == EnvelopeState.SUCCEEDED, (i, env)
        assert ev[i]["ok"] and all(n >= 2 for n in ev[i]["ok"]), (i, ev[i])
    late = sorted(i for i in transient if server.get_envelope(service, mid[i]).attempt > 1)
    # Successful records never reached retryd.
    for i in sorted(succeed)[::97]:
        with pytest.raises(grpc.RpcError) as e:
            server.get_envelope(service, mid[i])
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # Every failure was acknowledged by retryd at least once; a re-sent one is a duplicate, and
    # never two new ones for one record.
    fresh = sum(flags.count(0) for e in ev.values() for flags in [e["reported"]])
    dup = sum(flags.count(1) for e in ev.values() for flags in [e["reported"]])
    assert all(ev[i]["reported"].count(0) <= 1 for i in permanent | transient)
    fails = sum(len(ev[i]["fail"]) for i in permanent | transient)
    # A failure whose report was in flight at the kill has a "fail" line and no "reported" one
    # (at most one per handler thread); it was read again and reported after the restart.
    assert 0 <= fails - (fresh + dup) <= 8, (fails, fresh, dup)
    twice = sorted(i for i in succeed if len(ev[i]["ok"]) > 1)
    retried_twice = sorted(i for i in transient if len(ev[i]["ok"]) > 1)
    print(f"kafka e2e (python): {RECORDS} records; succeeded first time {len(succeed)}, "
          f"retried and succeeded {len(transient)}, dead-lettered {len(permanent)}; "
          f"failure reports new {fresh}, duplicate {dup}; successes executed twice after the kill "
          f"{len(twice)}; retries run again after the kill {len(retried_twice)} (envelopes with more than "
          f"one failed attempt: {len(late)}); committed at the kill {commit_at_kill}")
