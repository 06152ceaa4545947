"""A worker process for the shutdown and kill tests: ``worker_proc.py TARGET SERVICE SLEEP``.

Each handler prints ``start <message_id>``, sleeps SLEEP seconds, then prints ``done <message_id>``
and succeeds. Visibility timeout 2 s, so leases held by a killed process come back quickly.
"""

import sys
import time

import retryd

target, service, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 2


def handle(e: retryd.Envelope) -> None:
    print("start", e.message_id, flush=True)
    time.sleep(sleep)
    print("done", e.message_id, flush=True)


with retryd.Client(target=target) as c:
    w = retryd.Worker(service, handle, client=c, concurrency=concurrency, visibility_timeout=2, wait_time=0.5)
    print("ready", flush=True)
    w.run()
    print("exited", w.succeeded, flush=True)
