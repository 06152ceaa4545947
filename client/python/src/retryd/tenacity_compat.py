"""tenacity's vocabulary for retryd policies: ``stop``/``wait``/``retry`` in, policy JSON out.

:func:`to_policy` turns a tenacity-style spec into one entry of the server config's ``policies``
list (see ``proto/retryd/v1/config.proto``). It accepts tenacity's own objects when tenacity is
installed, a ``tenacity.Retrying`` (or a function decorated with ``@tenacity.retry``), and the
look-alike constructors of this module (same names and parameters) when it is not. What retryd
cannot reproduce exactly raises :class:`UnsupportedSpec` naming the parameter.

retryd computes the delay before retry n (n = attempts made so far) as
``min(max, initial × multiplier^(n−1))``, then jitters it (``server/core/backoff.h``).
tenacity's ``wait_exponential(multiplier=m, exp_base=b, max=M)`` waits
``min(M, m × b^(n−1))`` before attempt n+1: the same with initial = m, multiplier = b.

Example::

    from retryd.tenacity_compat import (to_policy, stop_after_attempt, wait_exponential,
                                        retry_if_exception_type)
    spec = to_policy("billing", stop=stop_after_attempt(5),
                     wait=wait_exponential(multiplier=0.5, max=30),
                     retry=retry_if_exception_type((TimeoutError, ConnectionError)))
    # {"name": "billing", "maxAttempts": 5, "backoff": {"initial": "0.5s", "multiplier": 2.0,
    #  "max": "30s", "jitter": "NONE"}, ..., "classification": {"rules": [...],
    #  "unclassified": "PERMANENT"}}
    worker = retryd.Worker("billing", spec.handler(process))   # classifies like tenacity
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

from retryd.errors import FailureError
from retryd.types import ErrorClass, Failure

# retryd's accepted ranges (server/config/config.cc).
_MIN_INITIAL = 0.001
_MAX_INITIAL = 24 * 3600.0
_MAX_CAP = 7 * 24 * 3600.0
_MAX_ATTEMPTS = 1000
_MIN_DEADLINE = 1.0
_MAX_DEADLINE = 365 * 24 * 3600.0
_MAX_MULTIPLIER = 100.0

ExceptionTypes = Union[Type[BaseException], Tuple[Type[BaseException], ...]]


class UnsupportedSpec(ValueError):
    """A tenacity parameter retryd cannot reproduce; ``parameter`` names it."""

    def __init__(self, parameter: str, why: str) -> None:
        super().__init__(f"{parameter}: {why}")
        self.parameter = parameter


# -- look-alikes of tenacity's strategies (used when tenacity is not installed) ------------------


class _Stop:
    def __or__(self, other: Any) -> "stop_any":
        return stop_any(self, other)


class stop_after_attempt(_Stop):  # noqa: N801 - tenacity's names
    """At most ``max_attempt_number`` attempts, the first included."""

    def __init__(self, max_attempt_number: int) -> None:
        self.max_attempt_number = max_attempt_number


class stop_after_delay(_Stop):  # noqa: N801
    """No retry once ``max_delay`` seconds passed since the first attempt."""

    def __init__(self, max_delay: float) -> None:
        self.max_delay = float(max_delay)


class stop_before_delay(_Stop):  # noqa: N801
    """No retry that would start more than ``max_delay`` seconds after the first attempt."""

    def __init__(self, max_delay: float) -> None:
        self.max_delay = float(max_delay)


class stop_any(_Stop):  # noqa: N801
    """Stop when any of ``stops`` says so (tenacity's ``a | b``)."""

    def __init__(self, *stops: Any) -> None:
        self.stops = stops


class wait_fixed:  # noqa: N801
    def __init__(self, wait: float) -> None:
        self.wait_fixed = float(wait)


class wait_exponential:  # noqa: N801
    """``max(min, min(max, multiplier × exp_base^(n−1)))`` before retry n."""

    def __init__(self, multiplier: float = 1, max: float = math.inf, exp_base: float = 2, min: float = 0) -> None:
        self.multiplier = multiplier
        self.max = float(max)
        self.exp_base = exp_base
        self.min = float(min)


class wait_random_exponential(wait_exponential):  # noqa: N801
    """Uniform in ``[min, wait_exponential(...)]``."""


class wait_exponential_jitter:  # noqa: N801
    """``max(min, min(max, multiplier × exp_base^(n−1) + uniform(0, jitter)))``."""

    def __init__(self, initial: float = 1, max: float = math.inf, exp_base: float = 2, jitter: float = 1,
                 min: float = 0, multiplier: float = 1) -> None:
        self.multiplier = initial if initial != 1 else multiplier
        self.max = float(max)
        self.exp_base = exp_base
        self.jitter = float(jitter)
        self.min = float(min)


class retry_if_exception_type:  # noqa: N801
    """Retry only these exception types (and their subclasses)."""

    def __init__(self, exception_types: ExceptionTypes = Exception) -> None:
        self.exception_types = exception_types


class retry_if_not_exception_type:  # noqa: N801
    """Retry every exception except these types (and their subclasses)."""

    def __init__(self, exception_types: ExceptionTypes = Exception) -> None:
        self.exception_types = exception_types


# -- the result -----------------------------------------------------------------------------------


class PolicySpec(dict):
    """The policy JSON (a dict, ready for ``json.dumps``) plus the exception classifier that makes
    a worker's failures match it: ``failure(exc)`` and ``handler(fn)``."""

    def __init__(self, policy: Dict[str, Any], rules: Sequence[Tuple[Type[BaseException], ErrorClass]]) -> None:
        super().__init__(policy)
        self._rules = list(rules)

    def failure(self, exc: BaseException) -> Failure:
        """The :class:`retryd.Failure` to report for ``exc``: its error code is the name of the
        first listed exception type it is an instance of (so subclasses match, as in tenacity),
        else its own class name; the class is left to the policy's rules. A
        :class:`retryd.FailureError` with an explicit class keeps it."""
        if isinstance(exc, FailureError) and exc.error_class != ErrorClass.UNSPECIFIED:
            return exc.to_failure()
        code = type(exc).__name__
        for typ, _ in self._rules:
            if isinstance(exc, typ):
                code = typ.__name__
                break
        return Failure(error_code=code, message=str(exc) or type(exc).__name__)

    def handler(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` for a :class:`retryd.Worker`, its exceptions classified by :meth:`failure`."""

        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                f = self.failure(exc)
                raise FailureError(f.message, error_code=f.error_code) from exc

        return run


# -- the conversion ---------------------------------------------------------------------------------


def _kind(obj: Any) -> str:
    """The strategy's class name when it is tenacity's or this module's, else ''."""
    mod = type(obj).__module__
    if mod == __name__ or mod.startswith("tenacity"):
        return type(obj).__name__
    return ""


def _seconds(value: float) -> str:
    """A protobuf JSON duration: seconds with up to 9 decimals."""
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _stop(stop: Any) -> Tuple[Optional[int], Optional[float]]:
    """(max attempts, deadline seconds) of a stop strategy."""
    kind = _kind(stop)
    if kind == "stop_after_attempt":
        n = int(stop.max_attempt_number)
        if not 1 <= n <= _MAX_ATTEMPTS:
            raise UnsupportedSpec("stop_after_attempt.max_attempt_number",
                                  f"{n} is outside retryd's range 1..{_MAX_ATTEMPTS}")
        return n, None
    if kind in ("stop_after_delay", "stop_before_delay"):
        d = float(stop.max_delay)
        if not _MIN_DEADLINE <= d <= _MAX_DEADLINE:
            raise UnsupportedSpec(f"{kind}.max_delay",
                                  f"{d} s is outside retryd's max_retry_duration range 1 s..365 days")
        return None, d
    if kind == "stop_any":
        attempts: Optional[int] = None
        deadline: Optional[float] = None
        for s in stop.stops:
            a, d = _stop(s)
            if a is not None:
                attempts = a if attempts is None else min(attempts, a)
            if d is not None:
                deadline = d if deadline is None else min(deadline, d)
        return attempts, deadline
    if kind in ("_stop_never", "stop_never"):
        raise UnsupportedSpec("stop", "tenacity's stop_never retries forever; retryd needs "
                                      "stop_after_attempt (at most 1000) and/or stop_after_delay")
    raise UnsupportedSpec("stop", f"{type(stop).__name__} has no retryd equivalent (supported: "
                                  "stop_after_attempt, stop_after_delay, stop_before_delay and | of them)")


_JITTERS = ("NONE", "FULL", "EQUAL", "DECORRELATED", "PROPORTIONAL")


def _backoff(wait: Any, jitter: Optional[str], jitter_ratio: Optional[float], retries: int,
             deadline: Optional[float]) -> Dict[str, Any]:
    """retryd's backoff block for a wait strategy; ``retries`` and ``deadline`` bound the delays
    that matter (a delay past the deadline dead-letters, whatever its length)."""
    kind = _kind(wait)
    if kind == "wait_fixed":
        d = float(wait.wait_fixed)
        initial, multiplier, cap, floor, own_jitter = d, 1.0, d, 0.0, "NONE"
        prefix = "wait_fixed"
    elif kind in ("wait_exponential", "wait_random_exponential", "wait_exponential_jitter"):
        prefix = kind
        initial = float(getattr(wait, "multiplier", getattr(wait, "initial", 1)))
        multiplier = float(wait.exp_base)
        cap = float(wait.max)
        floor = float(wait.min)
        own_jitter = "FULL" if kind == "wait_random_exponential" else "NONE"
        if kind == "wait_exponential_jitter" and float(wait.jitter) != 0 and jitter is None:
            raise UnsupportedSpec(
                "wait_exponential_jitter.jitter",
                f"tenacity adds uniform(0, {wait.jitter}) s to every delay; retryd's jitter is "
                "FULL, EQUAL, DECORRELATED or PROPORTIONAL (a fraction of the delay). Pass jitter=0, "
                "or choose retryd's jitter explicitly with to_policy(..., jitter='EQUAL')")
        if kind == "wait_random_exponential" and floor > 0:
            raise UnsupportedSpec(f"{prefix}.min", "tenacity draws uniform(min, delay); retryd's FULL "
                                                   "jitter draws from 0 (use min=0)")
    elif kind in ("wait_none",):
        raise UnsupportedSpec("wait", "wait_none retries at once; retryd's smallest delay is 1 ms "
                                      "(use wait_fixed(0.001))")
    else:
        raise UnsupportedSpec("wait", f"{type(wait).__name__} has no retryd equivalent (supported: "
                                      "wait_fixed, wait_exponential, wait_random_exponential, "
                                      "wait_exponential_jitter)")

    if not 1.0 <= multiplier <= _MAX_MULTIPLIER:
        raise UnsupportedSpec(f"{prefix}.exp_base", f"{multiplier} is outside retryd's multiplier range 1..100")
    if math.isnan(cap) or cap <= 0:
        raise UnsupportedSpec(f"{prefix}.max", "must be positive")
    # The largest delay the spec can produce within `retries` retries, before the cap.
    try:
        largest = initial * multiplier ** max(retries - 1, 0)
    except OverflowError:
        largest = math.inf
    if deadline is not None:
        largest = min(largest, deadline)
    if cap > _MAX_CAP:
        if min(largest, cap) > _MAX_CAP:
            raise UnsupportedSpec(f"{prefix}.max", f"delays reach {min(largest, cap):.0f} s; retryd caps "
                                                   f"every delay at 7 days ({_MAX_CAP:.0f} s)")
        cap = _MAX_CAP  # never reached within the attempts allowed: the mapping stays exact
    # retryd clamps the initial delay to the cap, as tenacity's min(max, ...) does.
    initial = min(initial, cap)
    if not _MIN_INITIAL <= initial <= _MAX_INITIAL:
        name = "wait_fixed.wait" if kind == "wait_fixed" else f"{prefix}.multiplier"
        raise UnsupportedSpec(name, f"the first delay {initial} s is outside retryd's range 1 ms..24 h")
    if floor > initial and own_jitter == "NONE":
        raise UnsupportedSpec(f"{prefix}.min", f"a floor of {floor} s above the first delay {initial} s "
                                               "has no retryd equivalent (delays start at initial)")

    if jitter is not None:
        jitter = jitter.upper()
        if jitter not in _JITTERS:
            raise UnsupportedSpec("jitter", f"{jitter!r} is not one of {', '.join(_JITTERS)}")
        if kind == "wait_random_exponential" and jitter != "FULL":
            raise UnsupportedSpec("jitter", "wait_random_exponential is FULL jitter; another jitter "
                                            "would change its delays")
        own_jitter = jitter
    out: Dict[str, Any] = {"initial": _seconds(initial), "multiplier": multiplier, "max": _seconds(cap),
                           "jitter": own_jitter}
    if own_jitter == "PROPORTIONAL":
        out["jitterRatio"] = 0.2 if jitter_ratio is None else float(jitter_ratio)
    elif jitter_ratio is not None:
        raise UnsupportedSpec("jitter_ratio", "applies to jitter='PROPORTIONAL' only")
    return out


def _types(value: Any) -> List[Type[BaseException]]:
    return list(value) if isinstance(value, tuple) else [value]


def _classification(retry: Any) -> Tuple[Dict[str, Any], List[Tuple[Type[BaseException], ErrorClass]]]:
    kind = _kind(retry) if retry is not None else "retry_if_exception_type"
    if retry is None:
        return {"unclassified": "TRANSIENT"}, []
    if kind in ("retry_if_exception_type", "retry_if_not_exception_type"):
        listed, other = (ErrorClass.TRANSIENT, "PERMANENT") if kind == "retry_if_exception_type" \
            else (ErrorClass.PERMANENT, "TRANSIENT")
        types = _types(retry.exception_types)
        if any(t in (Exception, BaseException) for t in types):
            return {"unclassified": listed.name}, []
        names: Dict[str, Type[BaseException]] = {}
        for t in types:
            if t.__name__ in names and names[t.__name__] is not t:
                raise UnsupportedSpec(f"{kind}.exception_types",
                                      f"two types are named {t.__name__}; retryd matches error codes by name")
            names[t.__name__] = t
        rules = [{"errorCode": n, "errorClass": listed.name} for n in names]
        return {"rules": rules, "unclassified": other}, [(t, listed) for t in names.values()]
    if kind in ("retry_always", "_retry_always"):
        return {"unclassified": "TRANSIENT"}, []
    raise UnsupportedSpec("retry", f"{type(retry).__name__} has no retryd equivalent (supported: "
                                   "retry_if_exception_type, retry_if_not_exception_type)")


def to_policy(
    name: str,
    *,
    stop: Any = None,
    wait: Any = None,
    retry: Any = None,
    retrying: Any = None,
    jitter: Optional[str] = None,
    jitter_ratio: Optional[float] = None,
) -> PolicySpec:
    """The retryd policy named ``name`` (exact service, ``prefix.*`` or ``default``) that retries
    as tenacity would with ``stop``, ``wait`` and ``retry``.

    Args:
        retrying: a ``tenacity.Retrying`` (or a function decorated with ``@tenacity.retry``)
            whose ``stop``/``wait``/``retry`` are used; the explicit arguments win.
        jitter: retryd's jitter kind (``NONE``, ``FULL``, ``EQUAL``, ``DECORRELATED``,
            ``PROPORTIONAL``) instead of the wait's own; needed for ``wait_exponential_jitter``
            with ``jitter`` > 0, which retryd cannot reproduce.
        jitter_ratio: for ``PROPORTIONAL`` (default 0.2).

    The policy sets both ``backoff`` (TRANSIENT) and ``recoverableBackoff`` to the wait, and
    ``honorRetryAfter`` to false (tenacity ignores Retry-After). Raises :class:`UnsupportedSpec`
    naming the parameter retryd cannot reproduce.
    """
    if retrying is not None:
        retrying = getattr(retrying, "retry", retrying) if not hasattr(retrying, "stop") else retrying
        stop = stop if stop is not None else getattr(retrying, "stop", None)
        wait = wait if wait is not None else getattr(retrying, "wait", None)
        retry = retry if retry is not None else getattr(retrying, "retry", None)
    if stop is None:
        raise UnsupportedSpec("stop", "tenacity's default (stop_never) retries forever; give stop_after_attempt "
                                      "(at most 1000) and/or stop_after_delay")
    if wait is None:
        raise UnsupportedSpec("wait", "tenacity's default (wait_none) retries at once; give a wait strategy")
    attempts, deadline = _stop(stop)
    if attempts is None:
        attempts = _MAX_ATTEMPTS  # only a deadline: as many attempts as retryd allows
    backoff = _backoff(wait, jitter, jitter_ratio, attempts - 1, deadline)
    classification, rules = _classification(retry)
    policy: Dict[str, Any] = {"name": name, "maxAttempts": attempts, "backoff": backoff,
                              "recoverableBackoff": dict(backoff), "honorRetryAfter": False,
                              "classification": classification}
    if deadline is not None:
        policy["maxRetryDuration"] = _seconds(deadline)
    return PolicySpec(policy, rules)


def delays(policy: Dict[str, Any], retries: int) -> List[Tuple[float, float]]:
    """The (lowest, highest) delay in seconds before each of the first ``retries`` retries of a
    TRANSIENT failure under ``policy``, by retryd's formula (``server/core/backoff.cc``). The two
    are equal without jitter. DECORRELATED's window depends on the previous draw; its bounds here
    assume the largest previous delay."""
    b = policy["backoff"]
    initial = float(b["initial"].rstrip("s"))
    mult = float(b["multiplier"])
    cap = float(b["max"].rstrip("s"))
    initial = min(initial, cap)
    out = []
    prev_hi = 0.0  # the first retry's previous delay counts as initial
    for n in range(1, retries + 1):
        try:
            base = min(cap, initial * mult ** (n - 1))
        except OverflowError:
            base = cap
        kind = b["jitter"]
        if kind == "NONE":
            lo, hi = base, base
        elif kind == "FULL":
            lo, hi = 0.0, base
        elif kind == "EQUAL":
            lo, hi = base / 2, base
        elif kind == "DECORRELATED":
            hi = min(cap, max(initial, prev_hi) * mult)
            lo, prev_hi = min(initial, cap), hi
        else:
            r = float(b.get("jitterRatio", 0.2))
            lo, hi = base * (1 - r), min(cap, base * (1 + r))
        out.append((lo, hi))
    return out


__all__ = [
    "UnsupportedSpec", "PolicySpec", "to_policy", "delays",
    "stop_after_attempt", "stop_after_delay", "stop_before_delay", "stop_any",
    "wait_fixed", "wait_exponential", "wait_random_exponential", "wait_exponential_jitter",
    "retry_if_exception_type", "retry_if_not_exception_type",
]
