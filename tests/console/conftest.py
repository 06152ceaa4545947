"""Fixtures of the console's browser tests: a real retryd with tokens and the console on a free
loopback port, seeded through the gRPC API, and Debian's headless Chromium driven by Selenium
through Debian's chromedriver (nothing downloads a browser).

$RETRYD_BIN is the server (default build/server/retryd); screenshots go to
$RETRYD_CONSOLE_ARTIFACTS (default build/artifacts/console).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import grpc
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from retryd.v1 import admin_service_pb2, admin_service_pb2_grpc, envelope_pb2
from retryd.v1 import retry_service_pb2, retry_service_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
OPS_TOKEN = "ops-token-for-the-console-tests"
WORKER_TOKEN = "worker-token-for-the-console-tests"
ARTIFACTS = Path(os.environ.get("RETRYD_CONSOLE_ARTIFACTS", REPO / "build" / "artifacts" / "console"))

# What the hostile envelopes carry: markup, handlers and script URLs in every field a page shows.
HOSTILE = {
    "message_id": '<img src=x onerror="window.__pwned=1;alert(1)">',
    "error_code": "<script>alert(2)</script>",
    "message": '"><svg onload=alert(3)><a href="javascript:alert(4)">click</a>',
    "source": "javascript:alert(5)",
    "trace_id": "<iframe src=javascript:alert(6)></iframe>",
    "schema_version": "<b onmouseover=alert(7)>v1</b>",
    "headers": {"x-evil": "<script>window.__pwned=2</script>", "<img src=x onerror=alert(8)>": "v"},
}


def sha256(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


class ConsoleServer:
    """retryd with the console on, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, extra_args=(), config: Optional[dict] = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="retryd-console-"))
        cfg = {
            "metricsAddr": "off",
            "shutdownGrace": "2s",
            "auth": {"tokens": [
                {"name": "oncall-ops", "sha256": sha256(OPS_TOKEN), "role": "OPERATOR"},
                {"name": "billing-worker", "sha256": sha256(WORKER_TOKEN), "role": "WORKER"},
            ]},
            "policies": [
                {"name": "default", "maxAttempts": 3,
                 "backoff": {"initial": "60s", "multiplier": 2, "max": "120s", "jitter": "NONE"},
                 "deadLetter": {"escalationAge": "3600s"},
                 "replay": {"maxPerSecond": 50}},
            ],
        }
        cfg.update(config or {})
        (self.dir / "retryd.json").write_text(json.dumps(cfg))
        self.log_path = self.dir / "retryd.log"
        binary = os.environ.get("RETRYD_BIN", str(REPO / "build" / "server" / "retryd"))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--data-dir", str(self.dir / "data"), "--grpc-addr", "127.0.0.1:0",
             "--console-addr", "127.0.0.1:0", "--config", str(self.dir / "retryd.json"),
             *extra_args],
            stdout=subprocess.DEVNULL, stderr=self._log)
        self.grpc_port, self.url = self._wait_started()
        self.target = f"127.0.0.1:{self.grpc_port}"

    def _wait_started(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            for line in text.splitlines():
                if '"server_started"' in line:
                    event = json.loads(line)
                    return event["grpc_port"], event["console_url"]
            if self.proc.poll() is not None:
                raise RuntimeError(f"retryd exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("retryd did not start in 20 s")

    def channel(self, credentials=None):
        if credentials is None:
            return grpc.insecure_channel(self.target)
        return grpc.secure_channel(self.target, credentials,
                                   options=[("grpc.ssl_target_name_override", "localhost")])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Api:
    """The gRPC API with the operator token: seeds data and checks what the pages did."""

    def __init__(self, channel) -> None:
        self.md = [("authorization", f"Bearer {OPS_TOKEN}")]
        self.admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        self.retry = retry_service_pb2_grpc.RetryServiceStub(channel)

    def fail(self, service, message_id, code, message, cls=envelope_pb2.PERMANENT, payload=b"{}",
             headers=None, source="orders", trace_id="", schema_version="v1",
             content_type="application/json"):
        env = envelope_pb2.Envelope(service=service, message_id=message_id, payload=payload,
                                    content_type=content_type, source=source, trace_id=trace_id,
                                    schema_version=schema_version, headers=headers or {})
        failure = envelope_pb2.Failure(error_code=code, error_class=cls, message=message)
        return self.retry.ReportFailure(
            retry_service_pb2.ReportFailureRequest(envelope=env, failure=failure),
            metadata=self.md, timeout=10).decision

    def dead_count(self, **filter_fields) -> int:
        n, token = 0, ""
        while True:
            r = self.admin.ListDeadLetters(admin_service_pb2.ListDeadLettersRequest(
                filter=envelope_pb2.Filter(**filter_fields), page_size=1000, page_token=token),
                metadata=self.md, timeout=10)
            n += len(r.dead_letters)
            token = r.next_page_token
            if not token:
                return n

    def services(self) -> dict:
        r = self.admin.ListServices(admin_service_pb2.ListServicesRequest(), metadata=self.md, timeout=10)
        return {s.service: s for s in r.services}


def seed(api: Api) -> None:
    """billing: 12 CARD_DECLINED + 4 SCHEMA_INVALID dead letters; shipping: 3 UPSTREAM_GONE dead
    and 2 scheduled retries; hostile: two envelopes full of markup, one with a binary payload."""
    for i in range(12):
        api.fail("billing", f"order-{1000 + i}", "CARD_DECLINED", f"card declined for order {1000 + i}",
                 payload=json.dumps({"order": 1000 + i, "amount_cents": 1999 + i, "currency": "EUR",
                                     "items": [{"sku": "SKU-1", "qty": 1}]}).encode())
    for i in range(4):
        api.fail("billing", f"order-schema-{i}", "SCHEMA_INVALID", f"missing field customer_id in message {i}")
    for i in range(3):
        api.fail("shipping", f"parcel-{i}", "UPSTREAM_GONE", f"carrier API answered 410 for parcel {i}")
    for i in range(2):
        api.fail("shipping", f"parcel-retry-{i}", "UPSTREAM_TIMEOUT", "carrier API timed out",
                 cls=envelope_pb2.TRANSIENT)
    h = HOSTILE
    api.fail("hostile", h["message_id"], h["error_code"], h["message"] + " " + "A" * 3000,
             payload=b'{"html": "<script>window.__pwned=3</script>", "img": "<img src=x onerror=alert(9)>"}',
             headers=h["headers"], source=h["source"], trace_id=h["trace_id"],
             schema_version=h["schema_version"])
    api.fail("hostile", "binary-<b>1</b>", h["error_code"], h["message"],
             payload=b"\xff\xfe\x00<script>alert(10)</script>\x80\x81" + bytes(range(256)) * 300,
             content_type="<script>alert(11)</script>")


@pytest.fixture(scope="session")
def console() -> Iterator[ConsoleServer]:
    s = ConsoleServer()
    try:
        seed(Api(s.channel()))
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def api(console) -> Api:
    return Api(console.channel())


def make_driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("RETRYD_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1000", "--ignore-certificate-errors", "--no-first-run",
                "--disable-extensions", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    service = Service(executable_path=os.environ.get("RETRYD_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="session")
def driver() -> Iterator[webdriver.Chrome]:
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()


def login(driver, url: str, token: str) -> None:
    driver.get(url + "login")
    box = driver.find_element(By.ID, "token")
    box.clear()
    box.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def open_page(driver, base: str, hash_route: str, ready: str, timeout: float = 15):
    driver.get(base + hash_route)
    wait_ready(driver, ready, timeout)


def wait_ready(driver, ready: str, timeout: float = 15):
    WebDriverWait(driver, timeout).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f'body[data-ready="{ready}"]')))


def screenshot(driver, name: str) -> Path:
    """A PNG of the whole page (the window grown to the page's height, up to 4000 px)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height, chrome = driver.execute_script(
        "return [Math.min(4000, document.documentElement.scrollHeight),"
        " window.outerHeight - window.innerHeight]")
    driver.set_window_size(1440, max(900, int(height) + int(chrome) + 4))
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1440, 1000)
    return path
