"""A worker process for the shutdown and kill tests: ``worker_proc.py TARGET SERVICE SLEEP``.

Each handler prints ``start <message_id>``, sleeps SLEEP seconds, then prints ``done <message_id>``
and succeeds. Visibility timeout 2 s, so leases held by a killed process come back quickly.
"""

import sys
import threading
import time

import retryd

target, service, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 2


# Handlers run on several threads; print() writes its pieces separately, so two threads printing
# at once can interleave into one unparsable line ("start start m050 m051"). One write per line.
_out = threading.Lock()


def say(*words: object) -> None:
    with _out:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()


def handle(e: retryd.Envelope) -> None:
    say("start", e.message_id)
    time.sleep(sleep)
    say("done", e.message_id)


with retryd.Client(target=target) as c:
    w = retryd.Worker(service, handle, client=c, concurrency=concurrency, visibility_timeout=2, wait_time=0.5)
    say("ready")
    w.run()
    say("exited", w.succeeded)
