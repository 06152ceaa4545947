"""The console in a real browser (headless Chromium) against a real retryd with seeded data.

Each page renders the API's numbers; a replay and a purge started from the pages change the
server (checked through the API); a purge needs its typed confirmation; hostile values stay inert;
a worker token is refused; a POST without the CSRF token is refused; the console works over TLS.
Every page is saved as a PNG in build/artifacts/console/.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import time
import urllib.parse

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import (HOSTILE, OPS_TOKEN, WORKER_TOKEN, Api, ConsoleServer, login, make_driver,
                      open_page, screenshot, wait_ready)
from retryd.v1 import retry_service_pb2


def route(path: str, **params) -> str:
    return "#/" + path + ("?" + urllib.parse.urlencode(params) if params else "")


def cell(row, col: str) -> str:
    return row.find_element(By.CSS_SELECTOR, f'td[data-col="{col}"]').text


def assert_inert(driver) -> None:
    """No alert opened, no injected element, no marker set by injected script."""
    try:
        alert = driver.switch_to.alert
        pytest.fail(f"an alert opened: {alert.text}")
    except NoAlertPresentException:
        pass
    assert driver.execute_script("return window.__pwned === undefined")
    assert driver.find_elements(By.CSS_SELECTOR, "main img, main iframe, main b, main script") == []
    assert driver.find_elements(By.CSS_SELECTOR, "[onerror], [onload], [onmouseover]") == []
    scripts = [s.get_attribute("src") for s in driver.find_elements(By.TAG_NAME, "script")]
    assert all(s and s.endswith("/static/app.js") for s in scripts), scripts
    for a in driver.find_elements(By.CSS_SELECTOR, "a[href]"):
        assert not a.get_attribute("href").lower().startswith("javascript:"), a.get_attribute("href")


@pytest.fixture(scope="module")
def ops(driver, console):
    login(driver, console.url, OPS_TOKEN)
    wait_ready(driver, "overview")
    return driver


def test_worker_token_is_refused(console):
    d = make_driver()
    try:
        login(d, console.url, WORKER_TOKEN)
        error = WebDriverWait(d, 10).until(EC.visibility_of_element_located((By.ID, "error")))
        assert "not an operator token" in error.text
        assert d.current_url.endswith("/login")
        screenshot(d, "login-worker-refused")
        # It has no session: the console sends it back to sign in.
        d.get(console.url + "#/dead")
        WebDriverWait(d, 10).until(lambda x: x.current_url.endswith("/login"))
        login(d, console.url, "not-a-token")
        error = WebDriverWait(d, 10).until(EC.visibility_of_element_located((By.ID, "error")))
        assert "not a token this server knows" in error.text
    finally:
        d.quit()


def test_overview_shows_the_api_numbers(ops, console, api):
    open_page(ops, console.url, route("overview"), "overview")
    rows = {r.get_attribute("data-service"): r for r in ops.find_elements(By.CSS_SELECTOR, "#services tbody tr")}
    services = api.services()
    assert set(rows) == set(services)
    for name, s in services.items():
        assert cell(rows[name], "dead") == f"{s.dead:,}"
        assert cell(rows[name], "scheduled") == f"{s.scheduled:,}"
        assert cell(rows[name], "leased") == f"{s.leased:,}"
    assert cell(rows["billing"], "dead") == "16"
    assert cell(rows["shipping"], "scheduled") == "2"
    assert "CLOSED" in cell(rows["billing"], "circuit")
    assert "under escalation age 1 h" in cell(rows["billing"], "oldest")
    total = sum(s.dead for s in services.values())
    assert ops.find_element(By.CSS_SELECTOR, "#stat-dead .value").text == f"{total:,}"
    # The chart: one series per service with dead letters, its legend counting them.
    WebDriverWait(ops, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart svg rect"))
    legend = ops.find_element(By.CSS_SELECTOR, "#chart .legend").text
    for name in ("billing 16", "shipping 3", "hostile 2"):
        assert name in legend, legend
    screenshot(ops, "overview")


def test_failure_groups_of_a_service(ops, console):
    open_page(ops, console.url, route("groups", service="billing"), "groups")
    rows = ops.find_elements(By.CSS_SELECTOR, "#groups tbody tr")
    counts = {r.find_element(By.TAG_NAME, "code").text: r.find_element(By.TAG_NAME, "strong").text for r in rows}
    assert counts == {"CARD_DECLINED": "12", "SCHEMA_INVALID": "4"}
    screenshot(ops, "failure-groups")
    # From a group straight to its dead letters.
    row = [r for r in rows if "CARD_DECLINED" in r.text][0]
    row.find_element(By.LINK_TEXT, "Dead letters").click()
    wait_ready(ops, "dead")
    assert "fingerprint=" in ops.current_url
    assert len(ops.find_elements(By.CSS_SELECTOR, "#dead tbody tr")) == 12


def test_dead_letters_filters_paging_and_shareable_url(ops, console):
    open_page(ops, console.url, route("dead", service="billing", code="CARD_DECLINED", size="5"), "dead")
    first = [r.get_attribute("data-id") for r in ops.find_elements(By.CSS_SELECTOR, "#dead tbody tr")]
    assert len(first) == 5 and all(i.startswith("order-1") for i in first)
    ops.find_element(By.ID, "next-page").click()
    wait_ready(ops, "dead")
    second = [r.get_attribute("data-id") for r in ops.find_elements(By.CSS_SELECTOR, "#dead tbody tr")]
    assert len(second) == 5 and not set(first) & set(second)
    shared = ops.current_url
    # The URL is the view: opened afresh it shows the same page.
    ops.get(console.url + "#/overview")
    wait_ready(ops, "overview")
    ops.get(shared)
    wait_ready(ops, "dead")
    assert [r.get_attribute("data-id") for r in ops.find_elements(By.CSS_SELECTOR, "#dead tbody tr")] == second
    # Filters by class and reason, as retryctl dlq list.
    open_page(ops, console.url, route("dead", service="billing", reason="NON_RETRYABLE", code="SCHEMA_INVALID"), "dead")
    assert len(ops.find_elements(By.CSS_SELECTOR, "#dead tbody tr")) == 4
    open_page(ops, console.url, route("dead", service="billing", **{"class": "TRANSIENT"}), "dead")
    assert "No dead letters match" in ops.find_element(By.ID, "view").text
    # A bad filter value is the server's error, naming the field.
    open_page(ops, console.url, route("dead", reason="NOT_A_REASON"), "dead")
    assert ops.find_elements(By.CSS_SELECTOR, ".error")
    open_page(ops, console.url, route("dead", service="billing"), "dead")
    screenshot(ops, "dead-letters")


def test_one_dead_letter(ops, console, api):
    open_page(ops, console.url, route("letter", service="billing", id="order-1003"), "letter")
    fields = ops.find_element(By.ID, "fields").text
    assert "order-1003" in fields and "NON_RETRYABLE" in fields and "CARD_DECLINED" in fields
    assert "card declined for order 1003" in fields
    payload = ops.find_element(By.ID, "payload").text
    assert '"amount_cents": 2002' in payload  # Pretty-printed JSON.
    assert len(ops.find_elements(By.CSS_SELECTOR, "#history li")) == 1
    href = ops.find_element(By.ID, "download").get_attribute("href")
    assert "/api/payload?service=billing&message_id=order-1003" in href
    screenshot(ops, "dead-letter")


def test_hostile_values_stay_inert(ops, console):
    for hash_route, ready in [(route("overview"), "overview"), (route("groups", service="hostile"), "groups"),
                              (route("dead", service="hostile"), "dead"),
                              (route("letter", service="hostile", id=HOSTILE["message_id"]), "letter"),
                              (route("letter", service="hostile", id="binary-<b>1</b>"), "letter")]:
        open_page(ops, console.url, hash_route, ready)
        time.sleep(0.3)  # Time for an injected handler to fire, if there were one.
        assert_inert(ops)
    # The binary payload is shown as hex, truncated at 64 KiB, with a download.
    assert ops.find_element(By.ID, "payload").text.startswith("00000000  ff fe 00 3c")
    assert "first 64 KiB shown" in ops.find_element(By.ID, "view").text
    open_page(ops, console.url, route("letter", service="hostile", id=HOSTILE["message_id"]), "letter")
    text = ops.find_element(By.ID, "view").text
    # Shown as text, literally.
    for value in (HOSTILE["message_id"], HOSTILE["error_code"], HOSTILE["source"], HOSTILE["trace_id"],
                  "<script>window.__pwned=2</script>"):
        assert value in text, value
    assert_inert(ops)
    screenshot(ops, "hostile-dead-letter")
    open_page(ops, console.url, route("dead", service="hostile"), "dead")
    assert HOSTILE["message_id"] in ops.find_element(By.ID, "dead").text
    screenshot(ops, "hostile-dead-letters")


def test_replay_started_from_the_page_changes_the_server(ops, console, api):
    assert api.dead_count(service="shipping") == 3
    open_page(ops, console.url, route("replay", service="shipping", code="UPSTREAM_GONE"), "replay")
    ops.find_element(By.ID, "note").send_keys("INC-42 carrier fixed")
    ops.find_element(By.ID, "dry-run-button").click()
    count = WebDriverWait(ops, 10).until(EC.visibility_of_element_located((By.ID, "dry-count")))
    assert count.text == "3"
    assert api.dead_count(service="shipping") == 3  # A dry run changes nothing.
    screenshot(ops, "replay-dry-run")
    ops.find_element(By.ID, "start-replay").click()
    wait_ready(ops, "replay-status")
    WebDriverWait(ops, 20).until(lambda d: "SUCCEEDED" in d.find_element(By.ID, "replay-status").text)
    assert ops.find_element(By.ID, "replay-progress").text == "3 of 3"
    assert api.dead_count(service="shipping") == 0
    assert api.services()["shipping"].scheduled == 5
    screenshot(ops, "replay-progress")


def test_purge_needs_its_typed_confirmation(ops, console, api):
    before = api.dead_count(service="billing", error_codes=["SCHEMA_INVALID"])
    assert before == 4
    open_page(ops, console.url, route("purge", service="billing", code="SCHEMA_INVALID"), "purge")
    ops.find_element(By.ID, "purge-note").send_keys("schema v0 producers are gone")
    ops.find_element(By.ID, "purge-dry-run").click()
    count = WebDriverWait(ops, 10).until(EC.visibility_of_element_located((By.ID, "purge-count")))
    assert count.text == "4"
    go = ops.find_element(By.ID, "purge-go")
    assert not go.is_enabled()
    box = ops.find_element(By.ID, "purge-confirm")
    box.send_keys("purge 3")
    assert not go.is_enabled()
    screenshot(ops, "purge-confirm")
    go.click()  # Disabled: nothing happens.
    assert api.dead_count(service="billing", error_codes=["SCHEMA_INVALID"]) == 4
    box.clear()
    box.send_keys("purge 4")
    assert go.is_enabled()
    go.click()
    WebDriverWait(ops, 10).until(EC.visibility_of_element_located((By.ID, "purge-done")))
    assert api.dead_count(service="billing", error_codes=["SCHEMA_INVALID"]) == 0
    assert api.dead_count(service="billing") == 12


def test_circuit_override_with_a_note(ops, console, api):
    open_page(ops, console.url, route("circuit", service="billing"), "circuit")
    ops.find_element(By.CSS_SELECTOR, "#override option[value=FORCE_OPEN]").click()
    ops.find_element(By.ID, "apply-override").click()  # Without a note: refused on the page.
    WebDriverWait(ops, 5).until(lambda d: "NOTE REQUIRED" in d.find_element(By.ID, "circuit-result").text)
    ops.find_element(By.ID, "circuit-note").send_keys("INC-43 card processor down")
    ops.find_element(By.ID, "apply-override").click()
    WebDriverWait(ops, 10).until(lambda d: "OPEN" in d.find_element(By.ID, "circuit-result").text)
    state = api.retry.GetCircuit(retry_service_pb2.GetCircuitRequest(service="billing"), metadata=api.md, timeout=5)
    assert state.state == 2  # OPEN
    screenshot(ops, "circuit")


def test_audit_log_lists_the_pages_actions(ops, console):
    open_page(ops, console.url, route("audit"), "audit")
    text = ops.find_element(By.ID, "audit").text
    assert "PurgeDeadLetters" in text and "StartReplay" in text and "SetCircuitOverride" in text
    assert "oncall-ops" in text and "schema v0 producers are gone" in text
    screenshot(ops, "audit-log")
    # Filters go to the server (ListAuditEvents) and into the URL.
    open_page(ops, console.url, route("audit", method="PurgeDeadLetters"), "audit")
    ops_col = [r.find_elements(By.TAG_NAME, "td")[2].text.split("\n")[0]
               for r in ops.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    assert ops_col == ["PurgeDeadLetters", "PurgeDeadLetters"], ops_col
    open_page(ops, console.url, route("replays"), "replays")
    screenshot(ops, "replays")


# ----------------------------------------------------------------------------- plain HTTP

def raw(console, method, path, body=None, headers=None):
    u = urllib.parse.urlparse(console.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r, data


def test_csrf_and_origin_checks_over_plain_http(console):
    u = urllib.parse.urlparse(console.url)
    host = f"{u.hostname}:{u.port}"
    r, _ = raw(console, "POST", "/login", {"token": OPS_TOKEN}, {"Content-Type": "application/json", "Host": host})
    assert r.status == 200
    cookie = r.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split(";")[0]
    r, data = raw(console, "GET", "/api/session", headers={"Cookie": session})
    csrf = json.loads(data)["csrf_token"]
    path = "/api/retryd.v1.AdminService/ListServices"
    base = {"Cookie": session, "Host": host, "Content-Type": "application/json"}
    r, data = raw(console, "POST", path, {}, base)
    assert r.status == 403 and b"X-CSRF-Token: missing" in data
    r, _ = raw(console, "POST", path, {}, {**base, "X-CSRF-Token": "0" * 64})
    assert r.status == 403
    r, _ = raw(console, "POST", path, {}, {**base, "X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert r.status == 403
    r, _ = raw(console, "POST", path, {}, {**base, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"})
    assert r.status == 403
    r, _ = raw(console, "POST", "/api/retryd.v1.RetryService/ReportFailure", {}, {**base, "X-CSRF-Token": csrf})
    assert r.status == 404  # Worker RPCs are never relayed.
    r, _ = raw(console, "POST", path, {}, {**base, "X-CSRF-Token": csrf, "Origin": f"http://{host}"})
    assert r.status == 200
    # Without a session, nothing.
    r, _ = raw(console, "POST", path, {}, {"Host": host, "X-CSRF-Token": csrf})
    assert r.status == 401
    # GET never changes anything, and every response carries the security headers.
    r, _ = raw(console, "GET", "/api/retryd.v1.AdminService/PurgeDeadLetters", headers={"Cookie": session})
    assert r.status == 404
    r, _ = raw(console, "GET", "/")
    csp = r.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    assert r.getheader("Referrer-Policy") == "no-referrer"


# ----------------------------------------------------------------------------- TLS

def test_console_over_tls_when_the_server_has_tls(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = ConsoleServer(extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
    d = None
    try:
        assert server.url.startswith("https://")
        import grpc
        api = Api(server.channel(grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())))
        api.fail("tls-svc", "m-1", "BAD", "over TLS")
        # The certificate served is the server's own, and plain HTTP gets no page.
        u = urllib.parse.urlparse(server.url)
        ctx = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", u.port, context=ctx, timeout=10)
        conn.request("POST", "/login", body=json.dumps({"token": OPS_TOKEN}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        cookie = r.getheader("Set-Cookie")
        assert cookie.startswith("__Host-retryd_console=") and "Secure" in cookie
        d = make_driver()
        login(d, server.url, OPS_TOKEN)
        wait_ready(d, "overview")
        row = d.find_element(By.CSS_SELECTOR, '#services tr[data-service="tls-svc"]')
        assert cell(row, "dead") == "1"
        screenshot(d, "overview-tls")
    finally:
        if d is not None:
            d.quit()
        server.stop()
