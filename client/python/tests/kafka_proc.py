"""The consumer process of the Kafka end-to-end test (test_kafka_e2e.py), killed with -9 mid-stream.

``kafka_proc.py BOOTSTRAP TOPIC GROUP TARGET SERVICE JOURNAL``: a retryd.kafka.KafkaConsumer and
its retry Worker in one process. Record values are their index i; every 100th (i % 100 == 99)
takes 1 s, the others 10 ms. i % 50 == 0 fails permanently,
else i % 7 == 0 fails transiently on every read from Kafka (attempt 1) and succeeds on its retry
through retryd; every other record succeeds. Each event is one line appended to JOURNAL with a
single write(2), so lines survive a SIGKILL whole:
``ok I ATTEMPT`` (the handler succeeded), ``fail I ATTEMPT``, ``reported I DUPLICATE``.
"""

import os
import sys
import threading
import time

import retryd
from retryd import kafka


def main() -> None:
    bootstrap, topic, group, target, service, journal = sys.argv[1:7]
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(*words: object) -> None:
        os.write(fd, (" ".join(str(w) for w in words) + "\n").encode())

    def handle(rec: kafka.Record) -> None:
        i = int(rec.value)
        # 10 ms a record, 1 s for every 100th: records finish out of order, later ones pass a
        # slow one, and the kill lands mid-stream with slow records in flight.
        time.sleep(1.0 if i % 100 == 99 and rec.attempt == 1 else 0.01)
        if i % 50 == 0:
            note("fail", i, rec.attempt)
            raise retryd.PermanentError("poison record", error_code="POISON")
        if i % 7 == 0 and rec.attempt == 1:
            note("fail", i, rec.attempt)
            raise retryd.TransientError("downstream timed out", error_code="UPSTREAM_TIMEOUT")
        note("ok", i, rec.attempt)

    def reported(rec: kafka.Record, d: retryd.Decision) -> None:
        note("reported", int(rec.value), int(d.duplicate))

    with retryd.Client(target=target) as client:
        worker = kafka.retry_worker(service, handle, client=client, concurrency=4,
                                    visibility_timeout=5, wait_time=0.5)
        consumer = kafka.KafkaConsumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000},
            [topic], service, handle, client=client, concurrency=8, on_reported=reported,
        )
        t = threading.Thread(target=worker.run, daemon=True)
        t.start()
        note("ready", os.getpid(), 0)
        consumer.run()
        worker.stop()
        t.join(15)
        note("exited", consumer.succeeded, consumer.reported)


if __name__ == "__main__":
    main()
