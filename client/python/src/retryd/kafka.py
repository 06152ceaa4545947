"""A Kafka consumer that hands failed records to retryd and keeps its partitions moving.

Needs the ``kafka`` extra (``pip install 'retryd[kafka]'``, which brings confluent-kafka).

:class:`KafkaConsumer` polls topics with confluent-kafka and runs ``handler(record)`` on a thread
pool, so records of one partition finish out of order. A record whose handler raises is reported
to retryd (:func:`retryd.report_failure`, idempotent on its message id) and the partition moves
on: no retry topic, no blocking. Offsets are committed in order: a partition's offset is committed
only when every earlier record of it either succeeded or had its failure acknowledged by retryd,
so a crash at any point loses no failure (records after the last commit are read again; a failure
reported twice is answered ``duplicate=True`` and counted once; a success may run twice).

Retries come back through a retryd :class:`retryd.Worker`: :func:`retry_worker` builds one that
turns each due envelope back into a :class:`Record` and calls the same handler.

Example::

    def handle(record: retryd.kafka.Record) -> None:
        charge(json.loads(record.value))          # raise to fail; TransientError etc. classify

    consumer = retryd.kafka.KafkaConsumer(
        {"bootstrap.servers": "127.0.0.1:9092", "group.id": "billing"}, ["orders"],
        "billing", handle)
    worker = retryd.kafka.retry_worker("billing", handle)
    threading.Thread(target=worker.run, daemon=True).start()
    consumer.run()                                # until SIGTERM/SIGINT or stop()
"""

from __future__ import annotations

import base64
import logging
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from retryd.client import Client
from retryd.consumer import default_client
from retryd.errors import RetrydError, failure_from_exception
from retryd.offsets import OffsetTracker
from retryd.types import Decision, Envelope, Failure
from retryd.worker import Worker

try:
    import confluent_kafka
except ImportError as _e:  # pragma: no cover - depends on the extra
    raise ImportError("retryd.kafka needs confluent-kafka: pip install 'retryd[kafka]'") from _e

log = logging.getLogger("retryd.kafka")

# Envelope headers that carry a record's origin, so a retry can rebuild the Record.
HEADER_TOPIC = "kafka.topic"
HEADER_PARTITION = "kafka.partition"
HEADER_OFFSET = "kafka.offset"
HEADER_KEY = "kafka.key"  # base64; absent for a record without a key
HEADER_PREFIX = "kafka.header."  # + the record header's name; base64 of its value


@dataclass(frozen=True)
class Record:
    """One Kafka record as the handler sees it, first from Kafka and then from retryd.

    ``attempt`` is 1 when the record comes from Kafka and n > 1 for retryd's (n−1)th retry.
    """

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: bytes
    headers: Dict[str, bytes] = field(default_factory=dict)
    attempt: int = 1


Handler = Callable[[Record], Any]
MessageId = Callable[[Record], str]


def default_message_id(record: Record) -> str:
    """``topic/partition/offset``: unique per record, and the same when it is read again."""
    return f"{record.topic}/{record.partition}/{record.offset}"


def envelope_headers(record: Record) -> Dict[str, str]:
    """The envelope headers that carry ``record``'s origin (see :func:`record_from_envelope`)."""
    h = {HEADER_TOPIC: record.topic, HEADER_PARTITION: str(record.partition), HEADER_OFFSET: str(record.offset)}
    if record.key is not None:
        h[HEADER_KEY] = base64.b64encode(record.key).decode("ascii")
    for name, value in record.headers.items():
        h[HEADER_PREFIX + name] = base64.b64encode(value).decode("ascii")
    return h


def record_from_envelope(envelope: Envelope) -> Record:
    """The :class:`Record` a retried envelope came from (``attempt`` = the attempt about to run)."""
    h = envelope.headers
    key = h.get(HEADER_KEY)
    return Record(
        topic=h.get(HEADER_TOPIC, ""),
        partition=int(h.get(HEADER_PARTITION, "-1")),
        offset=int(h.get(HEADER_OFFSET, "-1")),
        key=None if key is None else base64.b64decode(key),
        value=envelope.payload,
        headers={k[len(HEADER_PREFIX):]: base64.b64decode(v) for k, v in h.items() if k.startswith(HEADER_PREFIX)},
        attempt=envelope.attempt + 1,
    )


def _record(msg: Any) -> Record:
    headers: Dict[str, bytes] = {}
    for name, value in msg.headers() or []:
        headers[name] = value if value is not None else b""
    return Record(
        topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
        key=msg.key(), value=msg.value() or b"", headers=headers,
    )


class KafkaConsumer:
    """Consumes topics, runs ``handler`` per record, hands failures to retryd, commits in order.

    Args:
        config: confluent-kafka consumer settings (``bootstrap.servers``, ``group.id``, ...).
            ``enable.auto.commit`` and ``enable.auto.offset.store`` are forced off: this class
            commits. ``auto.offset.reset`` defaults to ``earliest``.
        topics: the topics to subscribe to.
        service: the retryd service the failures go to.
        handler: ``handler(record)``; returning is success, raising is failure (classified by
            ``failure``).
        client: the :class:`retryd.Client`; by default the shared one from ``$RETRYD_ADDR``.
        message_id: the envelope's message id for a record; by default ``topic/partition/offset``
            (a key the application gives, such as an order id, also works: it must be the same
            every time the record is read).
        failure: turns a handler's exception into a :class:`retryd.Failure`
            (default :func:`retryd.failure_from_exception`).
        concurrency: handler threads.
        max_in_flight: records handed out and not finished, across partitions; polling stops
            at this many (if handlers then hold it longer than ``max.poll.interval.ms``, default
            5 min, the group hands the partitions to another member and they are read again).
        commit_interval: seconds between commits (a commit is also made on stop and revocation).
        report_backoff_max: a failure retryd could not take (unreachable) is re-sent with
            backoff up to this many seconds; its offset stays uncommitted meanwhile.
        shutdown_timeout: on stop, how long to wait for running handlers before the last commit.
        on_reported: called as ``on_reported(record, decision)`` on the handler's thread once
            retryd acknowledged a failure (``decision.duplicate`` for a re-sent one).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        topics: Sequence[str],
        service: str,
        handler: Handler,
        *,
        client: Optional[Client] = None,
        message_id: MessageId = default_message_id,
        failure: Callable[[BaseException], Failure] = failure_from_exception,
        concurrency: int = 8,
        max_in_flight: int = 1000,
        commit_interval: float = 0.5,
        poll_timeout: float = 0.2,
        report_backoff_max: float = 5.0,
        shutdown_timeout: float = 30.0,
        on_reported: Optional[Callable[[Record, Decision], Any]] = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        cfg = {"auto.offset.reset": "earliest", **dict(config)}
        cfg["enable.auto.commit"] = False
        cfg["enable.auto.offset.store"] = False
        self._config = cfg
        self.topics = list(topics)
        self.service = service
        self.handler = handler
        self._client = client
        self.message_id = message_id
        self.failure = failure
        self.concurrency = concurrency
        self.max_in_flight = max_in_flight
        self.commit_interval = commit_interval
        self.poll_timeout = poll_timeout
        self.report_backoff_max = report_backoff_max
        self.shutdown_timeout = shutdown_timeout
        self.on_reported = on_reported
        self._stop = threading.Event()
        # (topic, partition, offset, finished): finished False = abandoned while stopping.
        self._done: "queue.Queue[Tuple[str, int, int, bool]]" = queue.Queue()
        self._abandoned = 0
        self._tracker = OffsetTracker()
        self._consumer: Any = None
        self._stats_lock = threading.Lock()
        #: records whose handler succeeded / whose failure retryd acknowledged (new, duplicate)
        self.succeeded = 0
        self.reported = 0
        self.duplicates = 0

    def stop(self) -> None:
        """Stop polling; :meth:`run` returns after the last commit. Safe from a signal handler."""
        self._stop.set()

    def run(self) -> None:
        """Consume until :meth:`stop` or SIGTERM/SIGINT (handled only on the main thread)."""
        previous: Dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda signum, frame: self.stop())
        consumer = confluent_kafka.Consumer(self._config)
        self._consumer = consumer
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="retryd-kafka")
        try:
            consumer.subscribe(self.topics, on_revoke=self._on_revoke)
            self._loop(consumer, pool)
            self._drain(consumer)
        finally:
            pool.shutdown(wait=False)
            consumer.close()
            for sig, h in previous.items():
                signal.signal(sig, h)

    # -- the poll loop (the only thread that touches the consumer and the tracker) -------------

    def _loop(self, consumer: Any, pool: ThreadPoolExecutor) -> None:
        last_commit = time.monotonic()
        while not self._stop.is_set():
            self._collect(block=self._tracker.in_flight() >= self.max_in_flight)
            if time.monotonic() - last_commit >= self.commit_interval:
                self._commit(consumer)
                last_commit = time.monotonic()
            if self._tracker.in_flight() >= self.max_in_flight:
                continue
            msg = consumer.poll(self.poll_timeout)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    log.warning("retryd.kafka: consumer error: %s", msg.error())
                continue
            rec = _record(msg)
            self._tracker.start(rec.topic, rec.partition, rec.offset)
            pool.submit(self._process, rec)

    def _collect(self, block: bool) -> None:
        try:
            item = self._done.get(timeout=self.poll_timeout) if block else self._done.get_nowait()
        except queue.Empty:
            return
        while True:
            topic, partition, offset, finished = item
            if finished:
                self._tracker.finish(topic, partition, offset)
            else:
                self._abandoned += 1
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return

    def _commit(self, consumer: Any, only: Optional[List[Tuple[str, int]]] = None) -> None:
        todo = [c for c in self._tracker.committable() if only is None or (c[0], c[1]) in only]
        if not todo:
            return
        try:
            consumer.commit(offsets=[confluent_kafka.TopicPartition(t, p, o) for t, p, o in todo], asynchronous=False)
        except confluent_kafka.KafkaException as e:
            log.warning("retryd.kafka: commit failed (will retry): %s", e)
            return
        for t, p, o in todo:
            self._tracker.committed(t, p, o)

    def _on_revoke(self, consumer: Any, partitions: List[Any]) -> None:
        self._collect(block=False)
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        self._commit(consumer, only=revoked)
        for t, p in revoked:
            self._tracker.drop(t, p)

    def _drain(self, consumer: Any) -> None:
        deadline = time.monotonic() + self.shutdown_timeout
        while self._tracker.in_flight() > self._abandoned and time.monotonic() < deadline:
            self._collect(block=True)
        if self._tracker.in_flight() > 0:
            log.warning("retryd.kafka: %d record(s) unfinished at shutdown; read again on restart",
                        self._tracker.in_flight())
        self._commit(consumer)

    # -- handler threads ------------------------------------------------------------------------

    def _process(self, rec: Record) -> None:
        try:
            self.handler(rec)
        except Exception as exc:  # noqa: BLE001 - every failure goes to retryd
            if not self._hand_over(rec, exc):
                # Stopping before retryd took it: left uncommitted, so it is read again.
                self._done.put((rec.topic, rec.partition, rec.offset, False))
                return
        else:
            with self._stats_lock:
                self.succeeded += 1
        self._done.put((rec.topic, rec.partition, rec.offset, True))

    def _hand_over(self, rec: Record, exc: BaseException) -> bool:
        """Report the failure until retryd acknowledges it; False if stopped first."""
        client = self._client or default_client()
        env = Envelope(
            service=self.service, message_id=self.message_id(rec), payload=rec.value,
            source=rec.topic, headers=envelope_headers(rec),
        )
        fail = self.failure(exc)
        backoff = 0.1
        while True:
            try:
                d = client.report_failure(env, fail)
                break
            except RetrydError as err:
                if self._stop.is_set():
                    log.warning("retryd.kafka: ReportFailure of %s failed while stopping (%s); "
                                "the record stays uncommitted and is read again", env.message_id, err)
                    return False
                log.warning("retryd.kafka: ReportFailure of %s failed (%s); retrying in %.1fs",
                            env.message_id, err, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.report_backoff_max)
        with self._stats_lock:
            self.reported += 1
            if d.duplicate:
                self.duplicates += 1
        if self.on_reported is not None:
            self.on_reported(rec, d)
        return True


def retry_worker(service: str, handler: Handler, *, client: Optional[Client] = None, **kwargs: Any) -> Worker:
    """A :class:`retryd.Worker` for ``service`` that calls ``handler`` with the :class:`Record`
    each due retry came from. ``kwargs`` go to the Worker (``concurrency``, ``wait_time``, ...)."""

    def run(envelope: Envelope) -> Any:
        return handler(record_from_envelope(envelope))

    return Worker(service, run, client=client, **kwargs)
