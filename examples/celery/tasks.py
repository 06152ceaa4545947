"""A Celery app on SQS whose failures are retried by retryd (see examples/README.md).

``send_email`` calls a mail service (the HTTP service of examples/http_service.py stands in for
it): a 503 or 429 is TRANSIENT and goes to retryd, a 400 is PERMANENT and is dead-lettered at
once; either way the task returns and its SQS message is deleted. The bridge brings the retries
back as the same task (same task id):

    python -m retryd.celery bridge --app tasks:app
"""

import os
import urllib.error
import urllib.request

from celery import Celery

import retryd
from retryd.celery import RetrydTask

app = Celery("mail", broker=os.environ.get("BROKER_URL", "sqs://x:x@127.0.0.1:9324"))
app.conf.update(
    retryd_service="example-celery",                       # retryd's service for these tasks
    retryd_addr=os.environ.get("RETRYD_ADDR", "127.0.0.1:50051"),
    task_ignore_result=True,
    # ElasticMQ (any region, plain HTTP); on AWS drop these and keep the visibility timeout.
    broker_transport_options={"region": "elasticmq", "is_secure": False, "visibility_timeout": 60},
)
MAIL_URL = os.environ.get("MAIL_URL", "http://127.0.0.1:8088")


@app.task(base=RetrydTask, name="send_email")
def send_email(to: str) -> str:
    req = urllib.request.Request(f"{MAIL_URL}/process", data=to.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return f"sent to {to}: {resp.status}"
    except urllib.error.HTTPError as e:
        raise retryd.classify_http(e.code, e.headers.get("Retry-After")) from e
