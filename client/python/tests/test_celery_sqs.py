"""Celery on SQS (ElasticMQ) with retryd: the mail-service outage, end to end.

A real ElasticMQ broker, a real Celery worker (threads pool) running ``celery_tasks``, the
retryd bridge (``python -m retryd.celery bridge``) and a real retryd, all on loopback. 120
``send_email`` tasks run while the mail service is down: the first 40 exhaust their retries
before the circuit has enough calls and are dead-lettered; the next 80 trip the circuit, whose
retries are then held while it is OPEN. The service recovers: trials close the circuit, the held
retries run, and a paced replay brings the dead letters back. Every task succeeds exactly once.

Runs when ``$RETRYD_ELASTICMQ_LIB`` names ElasticMQ's jars (scripts/test-celery.sh sets it);
``RETRYD_REQUIRE_CELERY=1`` turns a skip into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

if os.environ.get("RETRYD_REQUIRE_CELERY") != "1":
    pytest.importorskip("celery")
    pytest.importorskip("boto3")
    if not os.environ.get("RETRYD_ELASTICMQ_LIB"):
        pytest.skip("RETRYD_ELASTICMQ_LIB not set (scripts/test-celery.sh runs these)", allow_module_level=True)

import retryd  # noqa: E402
from retryd.v1 import admin_service_pb2 as apb  # noqa: E402
from retryd.v1 import envelope_pb2 as epb  # noqa: E402

from brokers import ElasticMQ  # noqa: E402
from conftest import RetrydServer  # noqa: E402

HERE = Path(__file__).resolve().parent
SERVICE = "mail"
WAVE1, WAVE2 = 40, 80
REPLAY_CAP = 10.0  # the policy's replay.max_per_second

POLICY = {
    "metricsAddr": "off",
    "shutdownGrace": "2s",
    "policies": [{
        "name": SERVICE,
        "maxAttempts": 2,
        "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"},
        "circuit": {"window": "120s", "failureRateThreshold": 0.5, "minimumCalls": 100,
                    "openDuration": "3s", "maxOpenDuration": "6s", "halfOpenTrials": 5},
        "replay": {"maxPerSecond": REPLAY_CAP},
    }],
}


def wait_for(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_log(path: Path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dead_letters(server: RetrydServer):
    out, token = [], ""
    while True:
        r = server.admin.ListDeadLetters(apb.ListDeadLettersRequest(
            filter=epb.Filter(service=SERVICE), page_size=1000, page_token=token), timeout=5)
        out.extend(r.dead_letters)
        token = r.next_page_token
        if not token:
            return out


def scheduled(server: RetrydServer) -> int:
    r = server.admin.ListRetries(apb.ListRetriesRequest(filter=epb.Filter(service=SERVICE), page_size=1000), timeout=5)
    return len(r.retries)


@pytest.fixture(scope="module")
def elasticmq():
    lib = os.environ.get("RETRYD_ELASTICMQ_LIB")
    assert lib, "RETRYD_ELASTICMQ_LIB must name ElasticMQ's jars (bash scripts/fetch-elasticmq.sh)"
    mq = ElasticMQ(lib)
    try:
        yield mq
    finally:
        mq.stop()


def spawn(args, env, log_path: Path):
    log = open(log_path, "wb")
    return subprocess.Popen(args, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT), log


def stop(proc, log):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


def test_outage_held_by_circuit_then_paced_replay(elasticmq, tmp_path):
    import celery_tasks

    server = RetrydServer(POLICY)
    queue = "retryd-" + uuid.uuid4().hex[:8]
    down = tmp_path / "mail-down"
    execlog = tmp_path / "executions.jsonl"
    env = dict(os.environ, RETRYD_TEST_BROKER_URL=f"sqs://x:x@127.0.0.1:{elasticmq.port}",
               RETRYD_TEST_QUEUE=queue, RETRYD_TEST_SERVICE=SERVICE, RETRYD_ADDR=server.target,
               RETRYD_TEST_DOWN=str(down), RETRYD_TEST_EXECLOG=str(execlog),
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    app = celery_tasks.make_app(env["RETRYD_TEST_BROKER_URL"], queue, SERVICE, server.target)
    worker = bridge = None
    try:
        worker = spawn([sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "threads",
                        "-c", "8", "-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle",
                        "-l", "INFO"], env, tmp_path / "worker.log")
        bridge = spawn([sys.executable, "-m", "retryd.celery", "bridge", "--app", "celery_tasks:app",
                        "--service", SERVICE, "--visibility-timeout", "60", "--wait-time", "2"],
                       env, tmp_path / "bridge.log")
        client = retryd.Client(target=server.target)
        down.touch()

        # Wave 1: 40 tasks fail twice each (80 failures < minimum_calls 100): all dead-lettered.
        ids = [app.send_task("send_email", args=[n, f"user{n}@example.com"]).id for n in range(WAVE1)]
        wait_for("wave 1 dead-lettered", lambda: len(dead_letters(server)) >= WAVE1, 90)
        assert client.get_circuit(SERVICE).state == retryd.CircuitState.CLOSED

        # Wave 2: 80 more trip the circuit; their retries are held while it is OPEN.
        ids += [app.send_task("send_email", args=[n, f"user{n}@example.com"]).id
                for n in range(WAVE1, WAVE1 + WAVE2)]
        wait_for("every first attempt", lambda: len({e["id"] for e in read_log(execlog)}) == WAVE1 + WAVE2, 90)
        opened = wait_for("the circuit OPEN", lambda: (c := client.get_circuit(SERVICE)).state
                          == retryd.CircuitState.OPEN and c, 30)
        held = scheduled(server)
        assert held > 0, "no retries held by the open circuit"
        # Stay down through one failed probe (HALF_OPEN trials fail → OPEN for 6 s).
        wait_for("a failed probe", lambda: (c := client.get_circuit(SERVICE)).state == retryd.CircuitState.OPEN
                 and c.since > opened.since and c, 30)
        open_again = client.get_circuit(SERVICE)
        dead_during_outage = len(dead_letters(server))

        # Recovery.
        down.unlink()
        recovered_at = time.time()

        def settled():
            log = read_log(execlog)
            ok = {e["id"] for e in log if e["ok"]}
            return len(ok) + len(dead_letters(server)) == len(ids) and scheduled(server) == 0
        wait_for("held retries to succeed", settled, 120)
        assert client.get_circuit(SERVICE).state == retryd.CircuitState.CLOSED
        dead = dead_letters(server)
        assert len(dead) >= WAVE1

        # Replay the dead letters, asking for 50/s: the policy caps it at 10/s.
        replay_started = time.time()
        rep = server.admin.StartReplay(apb.StartReplayRequest(
            filter=epb.Filter(service=SERVICE), max_per_second=50, note="mail outage over",
            request_id=uuid.uuid4().hex), timeout=10)
        assert rep.max_per_second == REPLAY_CAP
        wait_for("replay done", lambda: server.admin.GetReplay(apb.GetReplayRequest(name=rep.name), timeout=5).state
                 == apb.REPLAY_SUCCEEDED, 120)
        wait_for("replayed tasks to succeed",
                 lambda: len({e["id"] for e in read_log(execlog) if e["ok"]}) == len(ids), 120)

        # The counts.
        log = read_log(execlog)
        ok_runs = Counter(e["id"] for e in log if e["ok"])
        duplicated = sum(1 for n in ok_runs.values() if n > 1)
        after_success = 0
        first_ok = {}
        for e in sorted(log, key=lambda e: e["t"]):
            if e["id"] in first_ok:
                after_success += 1
            elif e["ok"]:
                first_ok[e["id"]] = e["t"]
        lost = len(set(ids) - set(ok_runs))
        # Held: no retry ran while the circuit was OPEN after the failed probe (6 s), leaving 1 s
        # for the trials already in the queue. (Retries leased before the first trip still run
        # after it: the circuit stops leasing, not what a worker already holds.)
        held_window = (open_again.since.timestamp() + 1.0, open_again.next_probe_at.timestamp() - 0.05)
        ran_while_open = [e for e in log if e["retry"] and held_window[0] < e["t"] < held_window[1]]
        first_open = (opened.since.timestamp(), opened.next_probe_at.timestamp())
        in_flight_at_trip = [e for e in log if e["retry"] and first_open[0] < e["t"] < first_open[1]]
        replayed = [e["t"] for e in log if e["retry"] and e["t"] >= replay_started]
        pace = (len(replayed) - 1) / (max(replayed) - min(replayed)) if len(replayed) > 1 else 0.0
        states = Counter(server.get_envelope(SERVICE, i).state for i in ids)
        summary = {
            "tasks": len(ids), "executions": len(log), "succeeded": len(ok_runs),
            "dead_lettered_before_replay": len(dead), "dead_lettered_wave1": WAVE1,
            "dead_during_outage": dead_during_outage, "held_by_open_circuit": held,
            "retries_run_while_open": len(ran_while_open),
            "held_window_s": round(held_window[1] - held_window[0], 1),
            "retries_in_flight_at_first_trip": len(in_flight_at_trip), "duplicated": duplicated,
            "runs_after_success": after_success, "lost": lost,
            "replayed": len(replayed), "replay_pace_per_s": round(pace, 2), "replay_cap_per_s": REPLAY_CAP,
            "recovery_to_all_succeeded_s": round(max(first_ok.values()) - recovered_at, 1),
            "reopened_after_failed_probe": open_again.since > opened.since,
            "elasticmq_start_s": round(elasticmq.start_seconds, 2),
        }
        report = os.environ.get("RETRYD_CELERY_REPORT")
        if report:
            Path(report).write_text(json.dumps(summary, indent=1) + "\n")
        print(summary)
        assert duplicated == 0 and after_success == 0, summary
        assert lost == 0, summary
        assert ran_while_open == [], summary
        assert states == {epb.SUCCEEDED: len(ids)}, states
        assert len(replayed) == len(dead), summary
        assert pace <= REPLAY_CAP * 1.15, summary
    finally:
        for proc in (bridge, worker):
            if proc:
                stop(*proc)
        server.stop()


def test_first_failure_waits_for_an_unavailable_retryd(elasticmq, tmp_path):
    """retryd is down when 5 tasks fail: each task keeps its report pending (retryd_report_patience)
    instead of acknowledging a failure nobody holds, and hands it over once retryd is up."""
    import celery_tasks
    from brokers import free_port

    port = free_port()
    queue = "retryd-" + uuid.uuid4().hex[:8]
    down, execlog = tmp_path / "mail-down", tmp_path / "executions.jsonl"
    down.touch()
    env = dict(os.environ, RETRYD_TEST_BROKER_URL=f"sqs://x:x@127.0.0.1:{elasticmq.port}",
               RETRYD_TEST_QUEUE=queue, RETRYD_TEST_SERVICE="mail-late", RETRYD_ADDR=f"127.0.0.1:{port}",
               RETRYD_TEST_DOWN=str(down), RETRYD_TEST_EXECLOG=str(execlog),
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    app = celery_tasks.make_app(env["RETRYD_TEST_BROKER_URL"], queue, "mail-late", env["RETRYD_ADDR"])
    worker = spawn([sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "threads",
                    "-c", "8", "-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle",
                    "-l", "INFO"], env, tmp_path / "worker.log")
    server = None
    try:
        ids = [app.send_task("send_email", args=[n, "x@example.com"]).id for n in range(5)]
        wait_for("5 first attempts", lambda: len(read_log(execlog)) == 5, 60)
        time.sleep(3)  # the reports wait for retryd
        server = RetrydServer(POLICY, grpc_addr=f"127.0.0.1:{port}")

        def handed_over():
            try:
                return all(server.get_envelope("mail-late", i).state == epb.SCHEDULED for i in ids)
            except Exception:  # noqa: BLE001 - NOT_FOUND until the report lands
                return False
        wait_for("the failures in retryd", handed_over, 60)
        time.sleep(1)
        assert len(read_log(execlog)) == 5, "a task ran again: its message was requeued"
        assert "requeueing" not in (tmp_path / "worker.log").read_text()
    finally:
        stop(*worker)
        if server:
            server.stop()
