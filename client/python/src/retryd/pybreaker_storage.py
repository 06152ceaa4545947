"""A fleet-wide pybreaker breaker (``pip install 'retryd[pybreaker]'``): every process reads and
feeds one circuit, retryd's, instead of keeping its own.

Example::

    import pybreaker, retryd
    from retryd.pybreaker_storage import fleet_breaker

    breaker = fleet_breaker("inventory", client=retryd.Client())
    try:
        breaker.call(requests.post, "http://inventory/reserve", json=order, timeout=5)
    except pybreaker.CircuitBreakerError:
        ...                                     # the fleet's circuit is OPEN: fail fast

:class:`RetrydCircuitStorage` is a ``pybreaker.CircuitBreakerStorage`` whose state is
``GetCircuit`` of the service (cached for ``max_age`` seconds); :class:`RetrydOutcomeListener`
feeds every call's outcome to ``RecordOutcomes`` (batched per ``flush_interval``). retryd's
policy decides the transitions, not pybreaker's ``fail_max``/``reset_timeout``/
``success_threshold`` (see the README's table of differences).
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from typing import Any, Optional

import pybreaker

from retryd.client import Client
from retryd.errors import RetrydError
from retryd.types import Circuit, CircuitState

log = logging.getLogger("retryd.pybreaker")

_NAMES = {
    CircuitState.CLOSED: pybreaker.STATE_CLOSED,
    CircuitState.OPEN: pybreaker.STATE_OPEN,
    CircuitState.HALF_OPEN: pybreaker.STATE_HALF_OPEN,
}


class _OutcomeBatch:
    """Success and failure counts sent with ``RecordOutcomes`` at most every ``interval`` s."""

    def __init__(self, client: Client, service: str, interval: float) -> None:
        self.client, self.service, self.interval = client, service, interval
        self._lock = threading.Lock()
        self._successes = self._failures = 0
        self._last = 0.0

    def add(self, success: bool) -> bool:
        """Counts one outcome; returns True when it flushed."""
        with self._lock:
            if success:
                self._successes += 1
            else:
                self._failures += 1
            if time.monotonic() - self._last < self.interval:
                return False
        self.flush()
        return True

    def flush(self) -> None:
        with self._lock:
            ok, failed = self._successes, self._failures
            self._successes = self._failures = 0
            self._last = time.monotonic()
        if not ok and not failed:
            return
        try:
            self.client.record_outcomes(self.service, successes=ok, failures=failed)
        except RetrydError as err:
            log.warning("retryd: RecordOutcomes for %s failed (%d/%d not counted): %s", self.service, ok, failed, err)


class RetrydCircuitStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's state storage backed by retryd's circuit of ``service``.

    * ``state`` is retryd's (``GetCircuit``, cached ``max_age`` seconds; refreshed at once after
      this process flushed outcomes). pybreaker's own transitions (``breaker.open()``, a closing
      half-open success) are not sent anywhere: retryd's policy decides, and the next read
      shows its state. If retryd cannot be reached the last state seen is kept
      (``fallback_state`` before any was seen).
    * ``counter`` is always 0, so pybreaker never trips on its local ``fail_max``; failures
      count in retryd's window instead (through :class:`RetrydOutcomeListener`).
    * ``opened_at`` is *now* while retryd says OPEN, so pybreaker fails fast until retryd
      itself turns HALF_OPEN (at its ``next_probe_at``), whatever ``reset_timeout`` says.
    """

    def __init__(self, service: str, *, client: Client, max_age: float = 1.0,
                 fallback_state: str = pybreaker.STATE_CLOSED, name: Optional[str] = None) -> None:
        super().__init__(name or f"retryd:{service}")
        self.service = service
        self.client = client
        self.max_age = max_age
        self._fallback = fallback_state
        self._lock = threading.Lock()
        self._circuit: Optional[Circuit] = None
        self._read_at = -1e9
        self._success_counter = 0

    # -- retryd's circuit -------------------------------------------------------------------------

    def circuit(self, *, refresh: bool = False) -> Optional[Circuit]:
        """retryd's circuit as last read (read again when older than ``max_age`` or ``refresh``)."""
        with self._lock:
            fresh = not refresh and time.monotonic() - self._read_at < self.max_age
            if fresh:
                return self._circuit
        try:
            c = self.client.get_circuit(self.service)
        except RetrydError as err:
            log.warning("retryd: GetCircuit for %s failed, keeping the last state: %s", self.service, err)
            return self._circuit
        with self._lock:
            self._circuit, self._read_at = c, time.monotonic()
        return c

    def invalidate(self) -> None:
        """The next read asks retryd."""
        with self._lock:
            self._read_at = -1e9

    # -- pybreaker.CircuitBreakerStorage ----------------------------------------------------------

    @property
    def state(self) -> str:
        c = self.circuit()
        if c is None:
            return self._fallback
        return _NAMES.get(c.state, pybreaker.STATE_CLOSED)

    @state.setter
    def state(self, state: str) -> None:
        # pybreaker's local decision; retryd's circuit is the fleet's and moves by its policy.
        self.invalidate()

    def increment_counter(self) -> None:
        pass  # failures are counted by retryd (RetrydOutcomeListener)

    def reset_counter(self) -> None:
        pass

    def increment_success_counter(self) -> None:
        with self._lock:
            self._success_counter += 1

    def reset_success_counter(self) -> None:
        with self._lock:
            self._success_counter = 0

    @property
    def counter(self) -> int:
        return 0

    @property
    def success_counter(self) -> int:
        with self._lock:
            return self._success_counter

    @property
    def opened_at(self) -> Optional[_dt.datetime]:
        c = self.circuit()
        if c is not None and c.state == CircuitState.OPEN:
            return _dt.datetime.now(_dt.timezone.utc)
        return c.since if c is not None else None

    @opened_at.setter
    def opened_at(self, value: _dt.datetime) -> None:
        pass


class RetrydOutcomeListener(pybreaker.CircuitBreakerListener):
    """Feeds each guarded call's outcome to retryd's ``RecordOutcomes`` (successes, and failures
    that pybreaker counts: not its ``exclude``d exceptions)."""

    def __init__(self, storage: RetrydCircuitStorage, *, flush_interval: float = 1.0) -> None:
        self.storage = storage
        self._batch = _OutcomeBatch(storage.client, storage.service, flush_interval)

    def success(self, cb: Any) -> None:
        if self._batch.add(True):
            self.storage.invalidate()

    def failure(self, cb: Any, exc: BaseException) -> None:
        if self._batch.add(False):
            self.storage.invalidate()

    def flush(self) -> None:
        """Sends the counts not sent yet."""
        self._batch.flush()
        self.storage.invalidate()


def fleet_breaker(service: str, *, client: Client, max_age: float = 1.0, flush_interval: float = 1.0,
                  **kwargs: Any) -> pybreaker.CircuitBreaker:
    """A ``pybreaker.CircuitBreaker`` on retryd's circuit of ``service`` (storage + listener).
    Other keyword arguments go to ``pybreaker.CircuitBreaker`` (``exclude``, ``listeners``,
    ``name``...; ``fail_max`` and ``reset_timeout`` have no effect, retryd's policy decides)."""
    storage = RetrydCircuitStorage(service, client=client, max_age=max_age)
    listener = RetrydOutcomeListener(storage, flush_interval=flush_interval)
    listeners = list(kwargs.pop("listeners", ())) + [listener]
    return pybreaker.CircuitBreaker(state_storage=storage, listeners=listeners, **kwargs)
