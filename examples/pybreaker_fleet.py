"""A fleet-wide pybreaker breaker: run it twice against one retryd (see examples/README.md).

    build/pyenv/bin/python examples/pybreaker_fleet.py http://127.0.0.1:8089   # nothing there: trips it
    build/pyenv/bin/python examples/pybreaker_fleet.py http://127.0.0.1:8088   # fails fast meanwhile

Each call's outcome goes to retryd (RecordOutcomes); every process reads retryd's circuit of
"example-breaker", so the second process fails fast (CircuitBreakerError) once the first one's
failures open it, although its own calls never failed.
"""

import sys
import time
import urllib.request

import pybreaker

import retryd
from retryd.pybreaker_storage import fleet_breaker

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8088"
client = retryd.Client()  # $RETRYD_ADDR, default 127.0.0.1:50051
breaker = fleet_breaker("example-breaker", client=client)


def process(item: str) -> bytes:
    req = urllib.request.Request(f"{base}/process", data=item.encode(), method="POST")
    return urllib.request.urlopen(req, timeout=5).read()


for i in range(60):
    try:
        breaker.call(process, f"item-{i}")
        print(f"{i}: ok (fleet circuit {breaker.current_state})")
    except pybreaker.CircuitBreakerError:
        print(f"{i}: failed fast, the fleet's circuit is {breaker.current_state}")
    except OSError as e:
        print(f"{i}: downstream failed: {e} (fleet circuit {breaker.current_state})")
    time.sleep(0.25)
