"""tenacity's vocabulary for a retryd policy: prints a retryd config file and the delays it gives.

    python3 examples/tenacity_policy.py > /tmp/retryd.json      # tenacity optional
    build/server/retryd --config /tmp/retryd.json

The policy for "billing" retries TimeoutError and ConnectionError (and their subclasses) up to 5
attempts in all, within 10 minutes, waiting 0.5 s, 1 s, 2 s, 4 s (wait_exponential(multiplier=0.5,
max=30)); any other exception is dead-lettered at once. A worker reports exceptions through
``spec.failure`` / ``spec.handler`` so that the server's rules see the listed type's name.
"""

import json
import sys

from retryd import tenacity_compat as tc

try:  # tenacity's own objects when it is installed, the look-alikes otherwise
    import tenacity as t
except ImportError:
    t = tc

spec = tc.to_policy(
    "billing",
    stop=t.stop_after_attempt(5) | t.stop_before_delay(600),
    wait=t.wait_exponential(multiplier=0.5, max=30),
    retry=t.retry_if_exception_type((TimeoutError, ConnectionError)),
)
json.dump({"policies": [spec]}, sys.stdout, indent=2)
print()
for n, (lo, hi) in enumerate(tc.delays(spec, spec["maxAttempts"] - 1), start=1):
    print(f"retry {n}: after {lo:g} s" if lo == hi else f"retry {n}: after {lo:g}-{hi:g} s", file=sys.stderr)
print(f"{type(ConnectionResetError()).__name__} is reported as {spec.failure(ConnectionResetError()).error_code}",
      file=sys.stderr)
