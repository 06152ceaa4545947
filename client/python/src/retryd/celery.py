"""Celery integration (``pip install 'retryd[celery]'``): failures go to retryd, not to the broker.

A task built on :class:`RetrydTask` that raises hands the failure to retryd (``ReportFailure``,
``message_id`` = the task id or the task's ``retryd_key``) and returns normally, so its broker
message is acknowledged: no ``autoretry_for``, no ``countdown``/ETA that outlives the broker's
visibility timeout, no duplicate when SQS redelivers. The bridge (:class:`Bridge`, or
``python -m retryd.celery bridge --app tasks:app --service billing``) leases the due retries
from retryd and publishes them as Celery tasks again, with the original task id and the lease
token in the message headers; the task that runs them checks the lease first (a lease that
expired or was already settled is not run), extends it while it runs, and reports its outcome
with the token (``ReportSuccess`` / ``ReportFailure``).

Example::

    app = Celery("mail", broker="sqs://")
    app.conf.retryd_service = "mail"            # retryd's service for these tasks

    @app.task(base=RetrydTask)
    def send_email(to, subject):
        smtp_send(to, subject)                   # raise retryd.TransientError(...) to classify
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

import celery
from celery.exceptions import Reject
from kombu.utils import json as kjson

from retryd.client import Client
from retryd.errors import (
    DeadlineExceededError,
    LeaseLostError,
    PermanentError,
    RetrydError,
    TransientError,
    UnavailableError,
)
from retryd.types import Decision, Envelope, LeasedEnvelope

log = logging.getLogger("retryd.celery")

# The payload of a task's envelope: the task's name, id, args and kwargs, as JSON.
CONTENT_TYPE = "application/vnd.retryd.celery+json"
# Message headers the bridge sets on a retry.
HEADER_LEASE = "retryd_lease_token"
HEADER_SERVICE = "retryd_service"
HEADER_MESSAGE_ID = "retryd_message_id"


def encode_payload(name: str, task_id: str, args: Any, kwargs: Any) -> bytes:
    """The envelope payload of a task call (kombu's JSON: datetimes, UUIDs, Decimals survive)."""
    return kjson.dumps({"task": name, "id": task_id, "args": list(args or ()), "kwargs": dict(kwargs or {})}).encode()


def decode_payload(payload: bytes) -> Dict[str, Any]:
    """The task call of an envelope payload; raises ValueError when it is not one."""
    data = kjson.loads(payload.decode("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("task"), str) or not data.get("id"):
        raise ValueError("payload is not a Celery task call (needs 'task' and 'id')")
    return data


class _Clients:
    """One retryd client per process and target (created after a prefork worker forked)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: Dict[Tuple[Optional[str], Optional[str]], Client] = {}

    def get(self, target: Optional[str], token: Optional[str]) -> Client:
        with self._lock:
            key = (target, token)
            if key not in self._clients:
                self._clients[key] = Client(target=target, token=token)
            return self._clients[key]


_clients = _Clients()


class _Outcomes:
    """First-attempt counts for ``RecordOutcomes`` (the circuit's and budget's denominator),
    sent at most every ``interval`` seconds, at the end of the task that finds them due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[int, str], list] = {}
        self._last = 0.0

    def add(self, client: Client, service: str, success: bool, interval: float) -> None:
        with self._lock:
            c = self._counts.setdefault((id(client), service), [client, service, 0, 0])
            c[2 if success else 3] += 1
            if time.monotonic() - self._last < interval:
                return
            self._last = time.monotonic()
            due, self._counts = list(self._counts.values()), {}
        for client_, service_, ok, failed in due:
            try:
                client_.record_outcomes(service_, successes=ok, failures=failed)
            except RetrydError as err:
                log.warning("retryd: RecordOutcomes for %s failed (%d/%d not counted): %s", service_, ok, failed, err)


_outcomes = _Outcomes()


def _header(request: Any, name: str) -> Optional[str]:
    """A custom message header of the running task (Celery exposes them as request attributes)."""
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


class _LeaseKeeper:
    """Extends a lease every third of its visibility timeout until stopped."""

    def __init__(self, client: Client, token: str, visibility_timeout: float) -> None:
        self._client, self._token, self._vt = client, token, visibility_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retryd-lease-keeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._vt / 3.0):
            try:
                self._client.extend_lease(self._token, self._vt)
            except LeaseLostError:
                log.warning("retryd: lease %s… lost while its task ran", self._token[:8])
                return
            except RetrydError as err:
                log.warning("retryd: ExtendLease failed: %s", err)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class RetrydTask(celery.Task):
    """A Celery task whose failures are retried by retryd.

    Class attributes (set on a subclass or with ``@app.task(base=RetrydTask, retryd_service=...)``):

    * ``retryd_service``: retryd's service; default ``app.conf.retryd_service``.
    * ``retryd_key``: ``callable(args, kwargs) -> str`` giving the ``message_id`` (an idempotency
      key of the work); None uses the task id.
    * ``retryd_visibility_timeout``: seconds a retry's lease is extended by while it runs (30).
    * ``retryd_outcomes_interval``: at most one ``RecordOutcomes`` per this many seconds (1.0).
    * ``retryd_report_patience``: seconds a first failure's report is retried while retryd is
      unavailable (30; keep it under the broker's visibility timeout).

    The client comes from ``app.conf.retryd_addr`` / ``app.conf.retryd_token``, else
    ``$RETRYD_ADDR`` / ``$RETRYD_TOKEN``. A first attempt that fails is reported and the task
    returns None (the message is acknowledged). If retryd stays unavailable for
    ``retryd_report_patience`` the task raises :class:`celery.exceptions.Reject` with
    ``requeue=True`` and the broker delivers the message again (the report is idempotent on
    ``message_id``); on SQS kombu requeues by sending a copy, and the original also comes back
    after its visibility timeout, so the task can then run twice. If retryd refuses the failure
    for good (a bad field, a payload over its limit, auth) the task raises the original
    exception (Celery logs it and acknowledges). ``acks_late`` is on: a worker that dies
    mid-task leaves the message to the broker.
    """

    abstract = True
    acks_late = True
    retryd_service: Optional[str] = None
    retryd_key: Optional[Callable[[Any, Any], str]] = None
    retryd_visibility_timeout: float = 30.0
    retryd_outcomes_interval: float = 1.0
    retryd_report_patience: float = 30.0

    # -- configuration ----------------------------------------------------------------------------

    def retryd_client(self) -> Client:
        conf = self.app.conf
        return _clients.get(conf.get("retryd_addr"), conf.get("retryd_token"))

    def _service(self) -> str:
        service = self.retryd_service or self.app.conf.get("retryd_service")
        if not service:
            raise ValueError(f"task {self.name}: set retryd_service (on the task or app.conf)")
        return service

    def _message_id(self, task_id: str, args: Any, kwargs: Any) -> str:
        key = type(self).__dict__.get("retryd_key") or getattr(self, "retryd_key", None)
        if key is None:
            return task_id
        fn = key.__func__ if hasattr(key, "__func__") else key
        return str(fn(args, kwargs))

    # -- execution --------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.id is None or request.called_directly:
            return super().__call__(*args, **kwargs)  # a plain call, not from a worker
        token = _header(request, HEADER_LEASE)
        if token:
            return self._run_retry(token, request, args, kwargs)
        return self._run_first(request, args, kwargs)

    def _run_first(self, request: Any, args: Any, kwargs: Any) -> Any:
        client, service = self.retryd_client(), self._service()
        try:
            result = self.run(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure goes to retryd
            _outcomes.add(client, service, False, self.retryd_outcomes_interval)
            env = Envelope(
                service=service,
                message_id=self._message_id(request.id, args, kwargs),
                payload=encode_payload(self.name, request.id, args, kwargs),
                content_type=CONTENT_TYPE,
                source=f"celery:{self.name}",
                headers={"celery_task_id": request.id},
            )
            d = self._hand_over(client, env, exc, request.id)
            log.info("retryd: %s[%s] failed (%r): %s", self.name, request.id, exc, d.kind.name)
            return None
        _outcomes.add(client, service, True, self.retryd_outcomes_interval)
        return result

    def _hand_over(self, client: Client, env: Envelope, exc: BaseException, task_id: str) -> Decision:
        """Reports a first failure, retrying while retryd is unavailable for up to
        ``retryd_report_patience`` seconds; then the message goes back to the broker."""
        deadline = time.monotonic() + self.retryd_report_patience
        pause = 0.2
        while True:
            try:
                return client.report_failure(env, exc)
            except (UnavailableError, DeadlineExceededError) as err:
                if time.monotonic() + pause > deadline:
                    log.error("retryd: could not hand %s[%s] to retryd (%s); requeueing", self.name, task_id, err)
                    raise Reject(f"retryd unavailable: {err}", requeue=True) from exc
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
            except RetrydError as err:
                # Refused for good (bad field, payload too large, auth): requeueing would loop.
                log.error("retryd: %s[%s] refused by retryd (%s); failing the task", self.name, task_id, err)
                raise exc from err

    def _run_retry(self, token: str, request: Any, args: Any, kwargs: Any) -> Any:
        client = self.retryd_client()
        service = _header(request, HEADER_SERVICE) or self._service()
        message_id = _header(request, HEADER_MESSAGE_ID) or request.id
        try:
            # The lease check: a retry whose lease expired (and so was rescheduled) or was
            # already settled is not run, so a redelivered message never runs twice.
            client.extend_lease(token, self.retryd_visibility_timeout)
        except LeaseLostError:
            log.warning("retryd: %s[%s]: lease no longer held; not run", self.name, request.id)
            return None
        keeper = _LeaseKeeper(client, token, self.retryd_visibility_timeout)
        try:
            result = self.run(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure goes to retryd
            keeper.stop()
            try:
                d = client.report_failure(Envelope(service=service, message_id=message_id), exc, lease_token=token)
                log.info("retryd: retry of %s[%s] failed (%r): %s", self.name, request.id, exc, d.kind.name)
            except LeaseLostError as err:
                log.warning("retryd: lease of %s lost before its failure was reported: %s", message_id, err)
            except RetrydError as err:
                log.error("retryd: ReportFailure for %s failed (the lease will expire): %s", message_id, err)
            return None
        keeper.stop()
        try:
            client.report_success(service, token)
        except LeaseLostError as err:
            log.warning("retryd: lease of %s lost before its success was reported: %s", message_id, err)
        except RetrydError as err:
            log.error("retryd: ReportSuccess for %s failed (the lease will expire): %s", message_id, err)
        return result


class Bridge:
    """Leases due retries of ``service`` from retryd and publishes them as Celery tasks.

    Each retry is sent with its original task id (from the payload) and the lease token in the
    headers; the task settles the lease (see :class:`RetrydTask`). ``visibility_timeout`` must
    cover the time a retry waits in the broker queue before a worker starts it; a retry that
    starts later finds its lease gone and is not run (retryd schedules it again).

    Args:
        app: the Celery app whose tasks the retries are.
        service: retryd's service.
        client: a :class:`retryd.Client`; default from ``app.conf.retryd_addr`` / the environment.
        batch: envelopes per Lease call.
        visibility_timeout: lease length in seconds at publication.
        wait_time: long-poll of each Lease call, seconds (at most 20); bounds how long
            :meth:`stop` takes.
        queue: the Celery queue to publish to; default the task's routing.
    """

    def __init__(
        self,
        app: celery.Celery,
        service: str,
        *,
        client: Optional[Client] = None,
        batch: int = 10,
        visibility_timeout: float = 300.0,
        wait_time: float = 20.0,
        queue: Optional[str] = None,
    ) -> None:
        self.app = app
        self.service = service
        self.client = client or _clients.get(app.conf.get("retryd_addr"), app.conf.get("retryd_token"))
        self.batch = max(1, batch)
        self.visibility_timeout = visibility_timeout
        self.wait_time = min(max(wait_time, 0.0), 20.0)
        self.queue = queue
        self.published = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop after the Lease call in flight; safe from a signal handler."""
        self._stop.set()

    def run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                result = self.client.lease(
                    self.service, max_messages=self.batch,
                    visibility_timeout=self.visibility_timeout, wait_time=self.wait_time,
                )
                backoff = 0.1
            except RetrydError as err:
                log.warning("retryd bridge: Lease failed: %s; again in %.1fs", err, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for le in result.envelopes:
                self.publish(le)

    def publish(self, le: LeasedEnvelope) -> None:
        """Publishes one leased retry; a payload that is not a task call is a PERMANENT failure,
        a broker that refuses it a TRANSIENT one (both reported with the lease token)."""
        e = le.envelope
        try:
            call = decode_payload(e.payload)
        except (ValueError, UnicodeDecodeError) as err:
            self._fail(le, PermanentError(f"not a Celery task call: {err}", error_code="CELERY_BAD_PAYLOAD"))
            return
        options: Dict[str, Any] = {
            "task_id": call["id"],
            "headers": {HEADER_LEASE: le.lease_token, HEADER_SERVICE: e.service, HEADER_MESSAGE_ID: e.message_id},
        }
        if self.queue:
            options["queue"] = self.queue
        try:
            self.app.send_task(call["task"], args=call["args"], kwargs=call["kwargs"], **options)
        except Exception as err:  # noqa: BLE001 - the broker's errors vary by transport
            self._fail(le, TransientError(f"publish failed: {err!r}", error_code="CELERY_PUBLISH_FAILED"))
            return
        self.published += 1
        log.info("retryd bridge: %s/%s attempt %d → %s[%s]", e.service, e.message_id, e.attempt + 1,
                 call["task"], call["id"])

    def _fail(self, le: LeasedEnvelope, failure: BaseException) -> None:
        try:
            self.client.report_failure(
                Envelope(service=le.envelope.service, message_id=le.envelope.message_id), failure,
                lease_token=le.lease_token,
            )
        except RetrydError as err:
            log.error("retryd bridge: ReportFailure for %s failed: %s", le.envelope.message_id, err)


def _load_app(spec: str) -> celery.Celery:
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    app = getattr(obj, attr or "app")
    if not isinstance(app, celery.Celery):
        raise SystemExit(f"{spec} is not a Celery app")
    return app


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retryd.celery", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bridge", help="lease due retries from retryd and publish them as Celery tasks")
    b.add_argument("--app", required=True, help="module:attribute of the Celery app (default attribute: app)")
    b.add_argument("--service", help="retryd service (default: app.conf.retryd_service)")
    b.add_argument("--target", help="retryd address (default: app.conf.retryd_addr, then $RETRYD_ADDR)")
    b.add_argument("--batch", type=int, default=10)
    b.add_argument("--visibility-timeout", type=float, default=300.0)
    b.add_argument("--wait-time", type=float, default=20.0)
    b.add_argument("--queue")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = _load_app(args.app)
    service = args.service or app.conf.get("retryd_service")
    if not service:
        parser.error("--service is required when app.conf.retryd_service is not set")
    client = Client(target=args.target or app.conf.get("retryd_addr"), token=app.conf.get("retryd_token"))
    bridge = Bridge(app, service, client=client, batch=args.batch, visibility_timeout=args.visibility_timeout,
                    wait_time=args.wait_time, queue=args.queue)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop())
    log.info("retryd bridge: service %s → Celery app %s", service, app.main)
    bridge.run()
    log.info("retryd bridge: stopped after publishing %d retries", bridge.published)
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
