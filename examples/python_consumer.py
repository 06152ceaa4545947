"""Python consumer example: first failures from a consumer loop, retries by a retryd.Worker.

    python3 examples/http_service.py 8088 &              # the downstream
    RETRYD_ADDR=127.0.0.1:50051 python3 examples/python_consumer.py http://127.0.0.1:8088

The "queue" is a list of inputs. Each is POSTed to the service; a failure is handed to retryd
with retryd.report_failure (503/429 are TRANSIENT, 429's Retry-After is honored, 400 is PERMANENT
and dead-lettered at once). Then a Worker takes the due retries until Ctrl-C / SIGTERM.
"""

import sys
import urllib.error
import urllib.request

import retryd

URL = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8088") + "/process"
SERVICE = "example-python"


def call(body: bytes) -> None:
    """POST body; raise a retryd error on an HTTP failure (the service's policy classifies it)."""
    try:
        urllib.request.urlopen(urllib.request.Request(URL, data=body, method="POST"), timeout=5)
    except urllib.error.HTTPError as e:
        raise retryd.http_error(e.code, e.headers.get("Retry-After"), message=f"{URL}: {e}") from e
    except OSError as e:
        raise retryd.TransientError(str(e), error_code="CONNECT") from e


def main() -> None:
    with retryd.Client() as client:
        for item in ["ok-1", "flaky-1", "slow-1", "bad-1"]:  # the existing consumer loop
            try:
                call(item.encode())
                print(f"{item}: ok")
            except Exception as exc:
                d = retryd.report_failure(SERVICE, item, exc, payload=item.encode(), client=client)
                print(f"{item}: {exc} -> {d.kind.name} attempt={d.attempt} reason={d.reason.name}")

        def handle(e: retryd.Envelope) -> None:
            call(e.payload)
            print(f"retry of {e.message_id} (attempt {e.attempt + 1}) succeeded")

        print("worker: taking due retries until Ctrl-C")
        retryd.Worker(SERVICE, handle, client=client, concurrency=2, wait_time=5).run()


if __name__ == "__main__":
    main()
