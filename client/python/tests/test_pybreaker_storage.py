"""A fleet-wide pybreaker breaker: two processes share retryd's circuit (a real retryd).

Failures in process A open the breaker for process B, which never failed itself; B then fails
fast without calling the downstream. Once retryd's trials (the failed work, leased back by a
Worker) succeed, the circuit closes for both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("pybreaker")

import retryd  # noqa: E402

from conftest import RetrydServer  # noqa: E402

HERE = Path(__file__).resolve().parent
POLICY = {
    "metricsAddr": "off",
    "shutdownGrace": "2s",
    "policies": [{
        "name": "brk.*",
        "maxAttempts": 5,
        "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"},
        "circuit": {"failureRateThreshold": 0.5, "minimumCalls": 10, "openDuration": "2s", "halfOpenTrials": 3},
    }],
}


class Proc:
    def __init__(self, target: str, service: str, storage: str = "retryd") -> None:
        self.p = subprocess.Popen([sys.executable, str(HERE / "breaker_proc.py"), "--target", target,
                                   "--service", service, "--storage", storage],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, cmd: str) -> dict:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self) -> None:
        self.p.stdin.close()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


@pytest.fixture(scope="module")
def breaker_server():
    s = RetrydServer(POLICY)
    try:
        yield s
    finally:
        s.stop()


def run_fleet(server: RetrydServer, storage: str):
    service = "brk." + uuid.uuid4().hex[:8]
    a, b = Proc(server.target, service, storage), Proc(server.target, service, storage)
    try:
        assert b.send("call ok") == {"error": None, "called": True, "state": "closed"}
        failures = [a.send("call fail") for _ in range(9)]
        after_b = b.send("call ok")
        return service, a, b, failures, after_b
    except BaseException:
        a.close()
        b.close()
        raise


def test_failures_in_one_process_open_the_breaker_of_another_and_recovery_closes_both(breaker_server):
    service, a, b, failures, after_b = run_fleet(breaker_server, "retryd")
    try:
        # A's 9th failure (1 success + 9 failures = minimum_calls 10, 90 % ≥ 50 %) trips retryd's circuit.
        assert all(f["called"] and f["error"] == "DownstreamError" for f in failures)
        assert [f["state"] for f in failures] == ["closed"] * 8 + ["open"]
        # B never failed, yet its breaker is open: it fails fast without calling.
        assert after_b == {"error": "CircuitBreakerError", "called": False, "state": "open"}
        assert a.send("call ok")["error"] == "CircuitBreakerError"

        # Recovery: after open_duration retryd is HALF_OPEN; its trials are the failed work,
        # leased back by a Worker whose calls now succeed, and they close the circuit.
        with retryd.Client(target=breaker_server.target) as c:
            deadline = time.monotonic() + 15
            while c.get_circuit(service).state != retryd.CircuitState.HALF_OPEN:
                assert time.monotonic() < deadline, "circuit never turned HALF_OPEN"
                time.sleep(0.1)
            assert b.send("state")["state"] == "half-open"
            w = retryd.Worker(service, lambda e: None, client=c, concurrency=4, wait_time=0.5)
            import threading
            t = threading.Thread(target=w.run)
            t.start()
            try:
                while c.get_circuit(service).state != retryd.CircuitState.CLOSED:
                    assert time.monotonic() < deadline, "circuit never closed"
                    time.sleep(0.1)
            finally:
                w.stop()
                t.join(timeout=10)
        assert a.send("call ok") == {"error": None, "called": True, "state": "closed"}
        assert b.send("call ok") == {"error": None, "called": True, "state": "closed"}
    finally:
        a.close()
        b.close()


def test_per_process_storage_does_not_share(breaker_server):
    # The same fleet on pybreaker's memory storage: A's breaker opens (fail_max 5), B's does not.
    _, a, b, failures, after_b = run_fleet(breaker_server, "memory")
    try:
        assert failures[-1]["state"] == "open"
        assert after_b == {"error": None, "called": True, "state": "closed"}
    finally:
        a.close()
        b.close()
