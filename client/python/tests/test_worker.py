"""retryd.Worker against a real retryd: outcomes, heartbeats, SIGTERM drain, SIGKILL recovery."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import retryd
from retryd import DeadLetterReason, EnvelopeState

HERE = Path(__file__).resolve().parent


def wait_for(cond, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def start_worker(w: retryd.Worker) -> threading.Thread:
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    return t


def test_worker_reports_success_failure_and_permanent(server, client, service):
    calls = collections.Counter()

    def handle(e: retryd.Envelope) -> None:
        calls[e.message_id] += 1
        if e.message_id == "flaky" and calls[e.message_id] == 1:
            raise retryd.TransientError("blip", error_code="BLIP")
        if e.message_id == "poison":
            raise retryd.PermanentError("bad payload", error_code="INVALID_SCHEMA")
        if e.message_id == "always":
            raise RuntimeError("boom")

    for mid in ["ok-1", "ok-2", "flaky", "poison", "always"]:
        client.report_failure(retryd.Envelope(service, mid, b"{}"), retryd.TransientError("first"))

    w = retryd.Worker(service, handle, client=client, concurrency=3, visibility_timeout=5, wait_time=0.5)
    t = start_worker(w)
    try:
        assert wait_for(lambda: server.get_envelope(service, "always").state == EnvelopeState.DEAD_LETTERED)
        assert wait_for(lambda: all(server.get_envelope(service, m).state == EnvelopeState.SUCCEEDED
                                    for m in ["ok-1", "ok-2", "flaky"]))
        assert wait_for(lambda: server.get_envelope(service, "poison").state == EnvelopeState.DEAD_LETTERED)
    finally:
        w.stop()
        t.join(10)
    assert not t.is_alive()
    assert calls["ok-1"] == 1 and calls["flaky"] == 2 and calls["poison"] == 1
    assert calls["always"] == 2  # first failure outside + 2 leased attempts = max_attempts 3
    assert server.get_envelope(service, "poison").dead_letter_reason == DeadLetterReason.NON_RETRYABLE
    always = server.get_envelope(service, "always")
    assert always.dead_letter_reason == DeadLetterReason.RETRY_EXHAUSTED
    assert always.last_error.error_code == "RuntimeError"


def test_heartbeat_keeps_long_handler_lease(server, client, service):
    client.report_failure(retryd.Envelope(service, "long"), retryd.TransientError("first"))
    seen = []

    def handle(e: retryd.Envelope) -> None:
        seen.append(e.attempt)
        time.sleep(3.5)  # well past the 1.5 s visibility timeout

    w = retryd.Worker(service, handle, client=client, concurrency=1, visibility_timeout=1.5, wait_time=0.5)
    t = start_worker(w)
    try:
        assert wait_for(lambda: server.get_envelope(service, "long").state == EnvelopeState.SUCCEEDED, timeout=15)
    finally:
        w.stop()
        t.join(10)
    stored = server.get_envelope(service, "long")
    assert seen == [1]  # leased once: the lease never expired
    assert all(h.error_code != "LEASE_EXPIRED" for h in stored.history)


# Handlers that print at once, as worker_proc.py's do: N threads each say "start t<n>-<i>" M times.
_SAY_FROM_THREADS = """
import sys, threading, time
import worker_proc
threads_n, lines_n = int(sys.argv[1]), int(sys.argv[2])
def handler(n):
    for i in range(lines_n):
        worker_proc.say("start", f"t{n}-{i}")
        time.sleep(0.0001)
threads = [threading.Thread(target=handler, args=(n,)) for n in range(threads_n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_worker_proc_lines_stay_whole_when_handlers_print_at_once():
    # The tests parse worker_proc.py's stdout line by line ("start <id>"). Its handlers run on
    # several threads, and its stdout is a pipe, written through word by word: print("start", id)
    # from two threads came out as "startstart m014" / " m013", and two envelopes went missing.
    threads_n, lines_n = 4, 500
    out = subprocess.run(
        [sys.executable, "-c", _SAY_FROM_THREADS, str(threads_n), str(lines_n)],
        cwd=HERE, stdout=subprocess.PIPE, text=True, timeout=60, check=True,
    ).stdout
    want = sorted(f"start t{n}-{i}" for n in range(threads_n) for i in range(lines_n))
    bad = [line for line in out.splitlines() if not line.startswith("start t") or len(line.split()) != 2]
    assert not bad, bad[:5]
    assert sorted(out.splitlines()) == want


def _spawn(server, service, sleep, concurrency=2):
    p = subprocess.Popen(
        [sys.executable, str(HERE / "worker_proc.py"), server.target, service, str(sleep), str(concurrency)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []

    def pump():
        for line in p.stdout:
            lines.append(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    assert wait_for(lambda: "ready" in lines, timeout=10), lines
    return p, lines


def test_sigterm_stops_leasing_and_finishes_in_flight(server, client, service):
    p, lines = _spawn(server, service, sleep=2.0, concurrency=2)
    try:
        for mid in ["a", "b", "c"]:
            client.report_failure(retryd.Envelope(service, mid), retryd.TransientError("first"))
        assert wait_for(lambda: sum(l.startswith("start") for l in lines) == 2, timeout=10), lines
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
    finally:
        if p.poll() is None:
            p.kill()
    started = [l.split()[1] for l in lines if l.startswith("start")]
    done = [l.split()[1] for l in lines if l.startswith("done")]
    assert len(started) == 2 and sorted(done) == sorted(started), lines
    assert lines[-1] == "exited 2", lines
    for mid in started:
        assert server.get_envelope(service, mid).state == EnvelopeState.SUCCEEDED
    (left,) = set("abc") - set(started)
    assert server.get_envelope(service, left).state == EnvelopeState.SCHEDULED  # never leased


def test_killed_worker_envelope_comes_back_after_lease_expiry(server, client, service):
    p, lines = _spawn(server, service, sleep=30.0, concurrency=1)
    try:
        client.report_failure(retryd.Envelope(service, "victim"), retryd.TransientError("first"))
        assert wait_for(lambda: "start victim" in lines, timeout=10), lines
        assert server.get_envelope(service, "victim").state == EnvelopeState.LEASED
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
    finally:
        if p.poll() is None:
            p.kill()
    t_killed = time.monotonic()
    # Still leased right after the kill; back after the 2 s lease expires (+ the 0.4 s backoff).
    got = None
    deadline = time.monotonic() + 10
    while got is None and time.monotonic() < deadline:
        r = client.lease(service, wait_time=1.0)
        got = r.envelopes[0] if r.envelopes else None
    assert got is not None and got.envelope.message_id == "victim"
    assert time.monotonic() - t_killed >= 0.5
    assert got.envelope.attempt == 2  # the expired lease counted as an attempt
    assert got.envelope.last_error.error_code == "LEASE_EXPIRED"
    client.report_success(service, got.lease_token)
