"""The Celery app of the Celery tests, run by a real worker (``celery -A celery_tasks worker``).

Its ``send_email`` task stands for a call to a downstream mail service: while the file named by
``$RETRYD_TEST_DOWN`` exists the downstream is down and the task raises a TRANSIENT failure.
Every execution appends one JSON line to ``$RETRYD_TEST_EXECLOG`` (task id, ok, time, retry or
first attempt), which is how the test counts executions and duplicates.
"""

from __future__ import annotations

import json
import os
import time

from celery import Celery

import retryd
from retryd.celery import HEADER_LEASE, RetrydTask, _header


def make_app(broker_url: str, queue: str, service: str, retryd_addr: str) -> Celery:
    app = Celery("retryd_celery_test", broker=broker_url)
    app.conf.update(
        retryd_service=service,
        retryd_addr=retryd_addr,
        task_default_queue=queue,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # ElasticMQ: any region, plain HTTP on the URL's host and port.
        broker_transport_options={"region": "elasticmq", "is_secure": False, "visibility_timeout": 60,
                                  "polling_interval": 0.1, "wait_time_seconds": 1},
    )
    return app


app = make_app(
    os.environ.get("RETRYD_TEST_BROKER_URL", "sqs://x:x@127.0.0.1:9324"),
    os.environ.get("RETRYD_TEST_QUEUE", "retryd-test"),
    os.environ.get("RETRYD_TEST_SERVICE", "mail"),
    os.environ.get("RETRYD_ADDR", "127.0.0.1:50051"),
)


@app.task(base=RetrydTask, bind=True, name="send_email")
def send_email(self, n: int, to: str) -> str:
    down = os.path.exists(os.environ.get("RETRYD_TEST_DOWN", "/nonexistent"))
    line = {"id": self.request.id, "n": n, "ok": not down, "t": time.time(),
            "retry": bool(_header(self.request, HEADER_LEASE))}
    with open(os.environ["RETRYD_TEST_EXECLOG"], "a") as f:
        f.write(json.dumps(line) + "\n")
    if down:
        raise retryd.TransientError("mail service unavailable", error_code="MAIL_DOWN")
    return f"sent {n} to {to}"
