"""One process of a fleet sharing a pybreaker breaker through retryd (driven by test_pybreaker_storage).

Reads commands on stdin, one a line, and answers each with one JSON line:

* ``call ok|fail``: a guarded call to a downstream that succeeds or fails (a failed call is also
  handed to retryd with report_failure, as a worker would); answers whether the downstream was
  called, the error type if any, and the breaker's state after the call.
* ``state``: the breaker's state.

``--storage memory`` uses pybreaker's own per-process storage instead (to show the difference).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import pybreaker

import retryd
from retryd.pybreaker_storage import fleet_breaker


class DownstreamError(Exception):
    pass


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--storage", choices=["retryd", "memory"], default="retryd")
    args = p.parse_args()
    client = retryd.Client(target=args.target)
    if args.storage == "retryd":
        breaker = fleet_breaker(args.service, client=client, max_age=0.0, flush_interval=0.0)
    else:
        breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        out = {}
        if cmd[0] == "call":
            called = []

            def downstream() -> str:
                called.append(1)
                if cmd[1] == "fail":
                    raise DownstreamError("inventory unavailable")
                return "ok"

            try:
                breaker.call(downstream)
                out["error"] = None
            except pybreaker.CircuitBreakerError:
                out["error"] = "CircuitBreakerError"
            except DownstreamError as exc:
                out["error"] = "DownstreamError"
                retryd.report_failure(args.service, uuid.uuid4().hex, retryd.TransientError(str(exc)),
                                      payload=b"{}", client=client)
            out["called"] = bool(called)
        out["state"] = breaker.current_state
        print(json.dumps(out), flush=True)
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
