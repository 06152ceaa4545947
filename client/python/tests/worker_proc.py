"""A worker process for the shutdown and kill tests: ``worker_proc.py TARGET SERVICE SLEEP [CONCURRENCY]``.

Each handler prints ``start <message_id>``, sleeps SLEEP seconds, then prints ``done <message_id>``
and succeeds. Visibility timeout 2 s, so leases held by a killed process come back quickly.
The tests (pytest and the Go client's cross-language test) parse these lines, one per event.
"""

import sys
import threading
import time

import retryd

_say_lock = threading.Lock()


def say(*words: object) -> None:
    """Prints one whole line. Handlers run on several threads, and print() writes each word, each
    separator and the newline separately, so unguarded lines interleave ("startstart m014")."""
    line = " ".join(str(w) for w in words) + "\n"
    with _say_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def main() -> None:
    target, service, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 2

    def handle(e: retryd.Envelope) -> None:
        say("start", e.message_id)
        time.sleep(sleep)
        say("done", e.message_id)

    with retryd.Client(target=target) as c:
        w = retryd.Worker(service, handle, client=c, concurrency=concurrency, visibility_timeout=2, wait_time=0.5)
        say("ready")
        w.run()
        say("exited", w.succeeded)


if __name__ == "__main__":
    main()
