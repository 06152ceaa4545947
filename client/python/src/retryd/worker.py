"""The retryd worker: long-polls Lease, runs a handler, reports the outcome with the lease token.

Example::

    def handle(envelope: retryd.Envelope) -> None:
        resp = requests.post(URL, data=envelope.payload, timeout=10)
        resp.raise_for_status()          # requests.HTTPError → classified by status/Retry-After

    retryd.Worker("billing", handle, concurrency=8).run()   # until SIGTERM/SIGINT
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional

from retryd.client import Client
from retryd.errors import LeaseLostError, RetrydError
from retryd.types import Envelope, LeasedEnvelope

log = logging.getLogger("retryd.worker")

Handler = Callable[[Envelope], Any]


class Worker:
    """Processes the due retries of one service.

    Args:
        service: the service whose retries to take.
        handler: ``handler(envelope)``; returning means success, raising means failure. Raise
            :class:`retryd.TransientError`, :class:`retryd.RecoverableError` or
            :class:`retryd.PermanentError` to choose the class; any other exception is reported
            by :func:`retryd.failure_from_exception` without a class (the policy decides).
        client: the :class:`retryd.Client` to use; by default one built from ``$RETRYD_ADDR`` /
            ``$RETRYD_TOKEN`` (and closed by :meth:`run`).
        concurrency: handlers run at once (threads); the worker never holds more leases.
        visibility_timeout: lease length in seconds; leases of running handlers are extended
            (``ExtendLease``) every third of it, so long handlers keep their envelopes.
        wait_time: long-poll of each Lease call, in seconds (at most 20). A stop waits for the
            poll in flight to return, so it also bounds how long :meth:`stop` takes to stop leasing.
        shutdown_timeout: on stop, how long to wait for running handlers; None waits for all.
            Envelopes of handlers still running afterwards come back when their leases expire.
    """

    def __init__(
        self,
        service: str,
        handler: Handler,
        *,
        client: Optional[Client] = None,
        concurrency: int = 4,
        visibility_timeout: float = 30.0,
        wait_time: float = 20.0,
        shutdown_timeout: Optional[float] = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if visibility_timeout < 1:
            raise ValueError("visibility_timeout must be at least 1 second")
        self.service = service
        self.handler = handler
        self.concurrency = concurrency
        self.visibility_timeout = visibility_timeout
        self.wait_time = min(max(wait_time, 0.0), 20.0)
        self.shutdown_timeout = shutdown_timeout
        self._own_client = client is None
        self._client = client
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._held: Dict[str, LeasedEnvelope] = {}
        self.succeeded = 0
        self.failed = 0

    # -- control ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop leasing; :meth:`run` returns once the handlers in flight have finished.

        Safe to call from any thread or a signal handler.
        """
        self._stop.set()
        # Do not take the condition's lock here: stop() may run in a signal handler that
        # interrupted a thread holding it. The lease loop re-checks the event periodically.

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self) -> None:
        """Process retries until :meth:`stop` or SIGTERM/SIGINT (handlers are installed only when
        called from the main thread, and restored on return)."""
        previous: Dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda signum, frame: self.stop())
        client = self._client or Client()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"retryd-{self.service}")
        heartbeat = threading.Thread(target=self._heartbeat, args=(client,), name="retryd-heartbeat", daemon=True)
        heartbeat.start()
        try:
            self._lease_loop(client, pool)
            self._drain()
        finally:
            pool.shutdown(wait=self.shutdown_timeout is None)
            self._stop.set()
            heartbeat.join(timeout=5)
            if self._own_client:
                client.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- internals --------------------------------------------------------------------------------

    def _lease_loop(self, client: Client, pool: ThreadPoolExecutor) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            with self._cond:
                while len(self._held) >= self.concurrency and not self._stop.is_set():
                    self._cond.wait(0.2)
                free = self.concurrency - len(self._held)
            if self._stop.is_set():
                return
            try:
                result = client.lease(
                    self.service,
                    max_messages=free,
                    visibility_timeout=self.visibility_timeout,
                    wait_time=self.wait_time,
                )
                backoff = 0.1
            except RetrydError as e:
                log.warning("retryd: Lease for %s failed: %s; retrying in %.1fs", self.service, e, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for le in result.envelopes:  # processed even when a stop arrived during the poll
                with self._cond:
                    self._held[le.lease_token] = le
                pool.submit(self._process, client, le)

    def _process(self, client: Client, le: LeasedEnvelope) -> None:
        e = le.envelope
        try:
            try:
                self.handler(e)
            except BaseException as exc:  # noqa: BLE001 - every failure is reported
                log.info("retryd: %s/%s attempt %d failed: %r", e.service, e.message_id, e.attempt + 1, exc)
                try:
                    client.report_failure(
                        Envelope(service=e.service, message_id=e.message_id), exc, lease_token=le.lease_token
                    )
                    self.failed += 1
                except LeaseLostError as err:
                    log.warning("retryd: lease of %s/%s lost before the failure was reported: %s",
                                e.service, e.message_id, err)
                except RetrydError as err:
                    log.error("retryd: ReportFailure for %s/%s failed: %s", e.service, e.message_id, err)
                if not isinstance(exc, Exception):
                    raise
                return
            try:
                client.report_success(e.service, le.lease_token)
                self.succeeded += 1
            except LeaseLostError as err:
                log.warning("retryd: lease of %s/%s lost before success was reported: %s",
                            e.service, e.message_id, err)
            except RetrydError as err:
                log.error("retryd: ReportSuccess for %s/%s failed: %s", e.service, e.message_id, err)
        finally:
            with self._cond:
                self._held.pop(le.lease_token, None)
                self._cond.notify_all()

    def _heartbeat(self, client: Client) -> None:
        interval = self.visibility_timeout / 3.0
        next_beat = time.monotonic() + interval
        while True:
            with self._cond:
                if self._stop.is_set() and not self._held:
                    return
                tokens = list(self._held)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + interval
                for token in tokens:
                    try:
                        client.extend_lease(token, self.visibility_timeout)
                    except LeaseLostError:
                        log.warning("retryd: lease %s… lost (expired) while its handler ran", token[:8])
                    except RetrydError as err:
                        log.warning("retryd: ExtendLease failed: %s", err)
            time.sleep(min(0.2, interval))

    def _drain(self) -> None:
        deadline = None if self.shutdown_timeout is None else time.monotonic() + self.shutdown_timeout
        with self._cond:
            while self._held:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    log.warning("retryd: %d handler(s) still running at shutdown", len(self._held))
                    return
                self._cond.wait(0.2 if remaining is None else min(remaining, 0.2))
