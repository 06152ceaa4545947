"""Enqueues a few send_email tasks: flaky-* fail once (503), slow-* once (429), bad-* always (400)."""

from tasks import send_email

for to in ["ok-1", "flaky-1", "flaky-2", "slow-1", "bad-1"]:
    r = send_email.delay(to)
    print(f"{to}: task {r.id}")
