"""Kafka consumer example: failed records go to retryd, retries come back through a Worker.

    bash scripts/kafka-broker.sh start /tmp/kafka      # prints the bootstrap address
    bash scripts/serve.sh &                            # retryd on 127.0.0.1:50051
    build/pyenv/bin/python examples/kafka_consumer.py 127.0.0.1:PORT orders --produce 100

(build/pyenv has retryd[kafka] after scripts/test-kafka.sh.) With --produce N it first creates
the topic (3 partitions) and writes N orders {"order": i}. The handler "charges" each order:
every 7th fails transiently the first time (retried by retryd a moment later), every 50th is
invalid and dead-lettered at once; the partition never waits for either. Offsets are committed
only past records that succeeded or whose failure retryd acknowledged. Ctrl-C stops it (after
a last commit); `retryctl dlq list --service example-kafka` shows the invalid orders.
"""

import argparse
import json
import logging
import threading

import retryd
from retryd import kafka

SERVICE = "example-kafka"


def charge(record: kafka.Record) -> None:
    order = json.loads(record.value)["order"]
    if order % 50 == 0:
        raise retryd.PermanentError(f"order {order}: missing customer", error_code="INVALID_ORDER")
    if order % 7 == 0 and record.attempt == 1:
        raise retryd.TransientError(f"order {order}: payment gateway timed out", error_code="GATEWAY_TIMEOUT")
    print(f"charged order {order} (attempt {record.attempt}, {record.topic}/{record.partition}/{record.offset})")


def produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    futures = AdminClient({"bootstrap.servers": bootstrap}).create_topics([NewTopic(topic, num_partitions=3)])
    try:
        futures[topic].result(30)
    except Exception as e:  # noqa: BLE001 - an existing topic is fine
        print(f"topic {topic}: {e}")
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(1, n + 1):
        p.produce(topic, key=str(i).encode(), value=json.dumps({"order": i}).encode())
    p.flush(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--produce", type=int, default=0, metavar="N")
    ap.add_argument("--group", default="example-kafka")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.produce:
        produce(args.bootstrap, args.topic, args.produce)

    with retryd.Client() as client:  # $RETRYD_ADDR, default 127.0.0.1:50051
        worker = kafka.retry_worker(SERVICE, charge, client=client, wait_time=1)
        consumer = kafka.KafkaConsumer(
            {"bootstrap.servers": args.bootstrap, "group.id": args.group}, [args.topic], SERVICE, charge,
            client=client,
            # The order id, not the offset: the same order produced twice is one envelope.
            message_id=lambda r: "order-" + r.key.decode() if r.key else kafka.default_message_id(r),
            on_reported=lambda r, d: print(f"handed over {r.topic}/{r.partition}/{r.offset}: "
                                           f"{d.kind.name}{' (duplicate)' if d.duplicate else ''}"),
        )
        t = threading.Thread(target=worker.run, daemon=True)
        t.start()
        consumer.run()  # until Ctrl-C / SIGTERM
        worker.stop()
        t.join(25)


if __name__ == "__main__":
    main()
