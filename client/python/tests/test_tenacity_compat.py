"""retryd.tenacity_compat: tenacity specs → policy JSON, checked against the real server's delays."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import tenacity

import retryd
from retryd import DeadLetterReason, DecisionKind
from retryd import tenacity_compat as tc
from conftest import RetrydServer


def tenacity_wait(wait, attempt: int) -> float:
    """tenacity's own wait before attempt `attempt + 1`, i.e. after `attempt` attempts."""
    state = tenacity.RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    return wait(state)


class Flaky(TimeoutError):
    """A subclass: tenacity retries it under retry_if_exception_type(TimeoutError)."""


# (service suffix, tenacity stop, tenacity wait, to_policy kwargs)
CASES = {
    "exp": (tenacity.stop_after_attempt(6), tenacity.wait_exponential(multiplier=0.5, max=5), {}),
    "exp3": (tenacity.stop_after_attempt(5), tenacity.wait_exponential(multiplier=0.25, exp_base=3, min=0.1, max=4), {}),
    "fixed": (tenacity.stop_after_attempt(4), tenacity.wait_fixed(1.5), {}),
    "jitter0": (tenacity.stop_after_attempt(5), tenacity.wait_exponential_jitter(max=3, jitter=0), {}),
    "random": (tenacity.stop_after_attempt(6), tenacity.wait_random_exponential(multiplier=1, max=8), {}),
    "equal": (tenacity.stop_after_attempt(5), tenacity.wait_exponential_jitter(initial=1, max=10, jitter=1),
              {"jitter": "EQUAL"}),
}


def policies():
    out = {}
    for name, (stop, wait, kw) in CASES.items():
        out[name] = tc.to_policy(f"tc-{name}", stop=stop, wait=wait, **kw)
    out["classify"] = tc.to_policy(
        "tc-classify", stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(1),
        retry=tenacity.retry_if_exception_type((TimeoutError, ConnectionError)))
    out["not"] = tc.to_policy(
        "tc-not", stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(1),
        retry=tenacity.retry_if_not_exception_type(KeyError))
    out["deadline"] = tc.to_policy(
        "tc-deadline", stop=tenacity.stop_after_attempt(10) | tenacity.stop_before_delay(30),
        wait=tenacity.wait_fixed(10))
    return out


@pytest.fixture(scope="module")
def tc_server():
    pols = policies()
    s = RetrydServer({"metricsAddr": "off", "shutdownGrace": "2s", "policies": list(pols.values())})
    try:
        yield s, pols
    finally:
        s.stop()


def report(c: retryd.Client, service: str, mid: str, failure, attempt: int = 1, first_seen_at=None):
    before = dt.datetime.now(dt.timezone.utc)
    d = c.report_failure(retryd.Envelope(service, mid, b"x", attempt=attempt, first_seen_at=first_seen_at), failure)
    after = dt.datetime.now(dt.timezone.utc)
    return d, before, after


def test_policy_json_for_the_readme_example():
    p = tc.to_policy("billing", stop=tc.stop_after_attempt(5) | tc.stop_after_delay(60),
                     wait=tc.wait_exponential(multiplier=0.5, max=30),
                     retry=tc.retry_if_exception_type((TimeoutError, ConnectionError)))
    assert json.loads(json.dumps(p)) == {
        "name": "billing", "maxAttempts": 5, "maxRetryDuration": "60s", "honorRetryAfter": False,
        "backoff": {"initial": "0.5s", "multiplier": 2.0, "max": "30s", "jitter": "NONE"},
        "recoverableBackoff": {"initial": "0.5s", "multiplier": 2.0, "max": "30s", "jitter": "NONE"},
        "classification": {"rules": [{"errorCode": "TimeoutError", "errorClass": "TRANSIENT"},
                                     {"errorCode": "ConnectionError", "errorClass": "TRANSIENT"}],
                           "unclassified": "PERMANENT"},
    }
    assert tc.delays(p, 5) == [(0.5, 0.5), (1.0, 1.0), (2.0, 2.0), (4.0, 4.0), (8.0, 8.0)]


def test_real_tenacity_objects_and_look_alikes_give_the_same_policy():
    ours = tc.to_policy("s", stop=tc.stop_after_attempt(4), wait=tc.wait_random_exponential(multiplier=2, max=60),
                        retry=tc.retry_if_not_exception_type(ValueError))
    real = tc.to_policy("s", stop=tenacity.stop_after_attempt(4),
                        wait=tenacity.wait_random_exponential(multiplier=2, max=60),
                        retry=tenacity.retry_if_not_exception_type(ValueError))
    assert dict(ours) == dict(real)

    @tenacity.retry(stop=tenacity.stop_after_attempt(4), wait=tenacity.wait_random_exponential(multiplier=2, max=60),
                    retry=tenacity.retry_if_not_exception_type(ValueError))
    def decorated():
        pass

    assert dict(tc.to_policy("s", retrying=decorated)) == dict(real)
    assert dict(tc.to_policy("s", retrying=decorated.retry)) == dict(real)


@pytest.mark.parametrize("kwargs, parameter", [
    ({"wait": tenacity.wait_exponential_jitter(initial=1, jitter=2)}, "wait_exponential_jitter.jitter"),
    ({"wait": tenacity.wait_exponential(multiplier=1, min=4, max=10)}, "wait_exponential.min"),
    ({"wait": tenacity.wait_random_exponential(min=1, max=10)}, "wait_random_exponential.min"),
    ({"wait": tenacity.wait_exponential(exp_base=200)}, "wait_exponential.exp_base"),
    ({"wait": tenacity.wait_exponential(multiplier=0)}, "wait_exponential.multiplier"),
    ({"wait": tenacity.wait_none()}, "wait"),
    ({"wait": tenacity.wait_fixed(1) + tenacity.wait_random(0, 1)}, "wait"),
    ({"stop": tenacity.stop_after_attempt(2000)}, "stop_after_attempt.max_attempt_number"),
    ({"stop": tenacity.stop_never}, "stop"),
    ({"stop": tenacity.stop_after_delay(0.5)}, "stop_after_delay.max_delay"),
    ({"stop": tenacity.stop_after_attempt(40), "wait": tenacity.wait_exponential()}, "wait_exponential.max"),
    ({"retry": tenacity.retry_if_result(lambda r: r is None)}, "retry"),
    ({"jitter": "SOMETIMES"}, "jitter"),
])
def test_what_retryd_cannot_express_names_the_parameter(kwargs, parameter):
    args = {"stop": tenacity.stop_after_attempt(3), "wait": tenacity.wait_exponential(max=10), **kwargs}
    with pytest.raises(tc.UnsupportedSpec) as e:
        tc.to_policy("s", **args)
    assert e.value.parameter == parameter
    assert str(e.value).startswith(parameter + ":")


@pytest.mark.parametrize("name", ["exp", "exp3", "fixed", "jitter0"])
def test_unjittered_delays_match_tenacity_exactly(tc_server, name):
    server, pols = tc_server
    stop, wait, _ = CASES[name]
    service = f"tc-{name}"
    with retryd.Client(target=server.target) as c:
        for attempt in range(1, stop.max_attempt_number):
            want = tenacity_wait(wait, attempt)
            assert tc.delays(pols[name], attempt)[-1] == pytest.approx((want, want))
            d, before, after = report(c, service, f"m{attempt}", retryd.TransientError("t"), attempt)
            assert d.kind == DecisionKind.SCHEDULED, (attempt, d)
            assert d.delay == pytest.approx(want, abs=1e-3), (attempt, d.delay, want)
            assert before + dt.timedelta(seconds=want - 0.01) <= d.next_retry_at <= after + dt.timedelta(seconds=want + 0.01)
        # The last attempt tenacity allows is the last one retryd allows.
        d, _, _ = report(c, service, "last", retryd.TransientError("t"), stop.max_attempt_number)
        assert d.kind == DecisionKind.DEAD_LETTERED and d.reason == DeadLetterReason.RETRY_EXHAUSTED


@pytest.mark.parametrize("name", ["random", "equal"])
def test_jittered_delays_stay_in_tenacity_window(tc_server, name):
    server, pols = tc_server
    stop, wait, _ = CASES[name]
    service = f"tc-{name}"
    with retryd.Client(target=server.target) as c:
        for attempt in range(1, stop.max_attempt_number):
            lo, hi = tc.delays(pols[name], attempt)[-1]
            got = [report(c, service, f"m{attempt}-{k}", retryd.TransientError("t"), attempt)[0].delay
                   for k in range(40)]
            assert all(lo - 1e-3 <= g <= hi + 1e-3 for g in got), (attempt, lo, hi, got)
            assert max(got) - min(got) > (hi - lo) / 4, (attempt, got)  # really random
            if name == "random":  # tenacity's own window is uniform(0, capped exponential)
                assert (lo, hi) == (0.0, pytest.approx(min(8, 2 ** (attempt - 1))))
                samples = [tenacity_wait(wait, attempt) for _ in range(200)]
                assert all(lo <= s <= hi for s in samples)


def test_classification_follows_retry_if_exception_type(tc_server):
    server, pols = tc_server
    spec = pols["classify"]
    with retryd.Client(target=server.target) as c:
        d, _, _ = report(c, "tc-classify", "sub", spec.failure(Flaky("slow")))
        assert d.kind == DecisionKind.SCHEDULED  # a subclass of a listed type is retried
        d, _, _ = report(c, "tc-classify", "conn", spec.failure(ConnectionResetError("reset")))
        assert d.kind == DecisionKind.SCHEDULED
        d, _, _ = report(c, "tc-classify", "other", spec.failure(ValueError("bad")))
        assert d.kind == DecisionKind.DEAD_LETTERED and d.reason == DeadLetterReason.NON_RETRYABLE

        spec = pols["not"]
        d, _, _ = report(c, "tc-not", "key", spec.failure(KeyError("k")))
        assert d.kind == DecisionKind.DEAD_LETTERED and d.reason == DeadLetterReason.NON_RETRYABLE
        d, _, _ = report(c, "tc-not", "other", spec.failure(ValueError("v")))
        assert d.kind == DecisionKind.SCHEDULED


def test_handler_wrapper_classifies_for_a_worker():
    spec = tc.to_policy("s", stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(1),
                        retry=tenacity.retry_if_exception_type(TimeoutError))

    def boom():
        raise Flaky("slow")

    with pytest.raises(retryd.FailureError) as e:
        spec.handler(boom)()
    f = retryd.failure_from_exception(e.value)
    assert f.error_code == "TimeoutError" and f.error_class == retryd.ErrorClass.UNSPECIFIED


def test_stop_before_delay_is_the_policy_deadline(tc_server):
    server, _ = tc_server
    now = dt.datetime.now(dt.timezone.utc)
    with retryd.Client(target=server.target) as c:
        d, _, _ = report(c, "tc-deadline", "young", retryd.TransientError("t"), 1, now - dt.timedelta(seconds=15))
        assert d.kind == DecisionKind.SCHEDULED  # 15 s + 10 s < 30 s
        d, _, _ = report(c, "tc-deadline", "old", retryd.TransientError("t"), 1, now - dt.timedelta(seconds=25))
        assert d.kind == DecisionKind.DEAD_LETTERED and d.reason == DeadLetterReason.DEADLINE_EXCEEDED


def test_example_config_starts_the_real_server_and_retries_as_printed(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "examples" / "tenacity_policy.py"
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=True)
    assert "retry 1: after 0.5 s" in out.stderr and "retry 4: after 4 s" in out.stderr
    assert "ConnectionResetError is reported as ConnectionError" in out.stderr
    config = json.loads(out.stdout)
    s = RetrydServer({"metricsAddr": "off", "shutdownGrace": "2s", **config})
    try:
        with retryd.Client(target=s.target) as c:
            spec = tc.PolicySpec(config["policies"][0], [(TimeoutError, retryd.ErrorClass.TRANSIENT),
                                                         (ConnectionError, retryd.ErrorClass.TRANSIENT)])
            d, _, _ = report(c, "billing", "a", spec.failure(ConnectionResetError("reset")), 4)
            assert d.kind == DecisionKind.SCHEDULED and d.delay == pytest.approx(4.0, abs=1e-3)
            d, _, _ = report(c, "billing", "b", spec.failure(ValueError("bad")))
            assert d.reason == DeadLetterReason.NON_RETRYABLE
    finally:
        s.stop()
