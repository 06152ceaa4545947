"""Failure classification helpers (pure functions; no server)."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

import retryd
from retryd import ErrorClass


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses(status):
    e = retryd.classify_http(status)
    assert isinstance(e, retryd.TransientError)
    f = retryd.failure_from_exception(e)
    assert f.error_class == ErrorClass.TRANSIENT and f.http_status == status and f.error_code == f"HTTP_{status}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501, 505])
def test_permanent_statuses(status):
    assert isinstance(retryd.classify_http(status), retryd.PermanentError)


def test_success_is_not_a_failure():
    assert retryd.classify_http(200) is None and retryd.classify_http(302) is None


def test_retry_after_seconds_and_date():
    assert retryd.parse_retry_after("120") == 120.0
    assert retryd.parse_retry_after(" 1.5 ") == 1.5
    assert retryd.parse_retry_after(None) is None
    assert retryd.parse_retry_after("soon") is None
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    header = email.utils.format_datetime(now + dt.timedelta(seconds=30), usegmt=True)
    assert retryd.parse_retry_after(header, now=now) == pytest.approx(30)
    past = email.utils.format_datetime(now - dt.timedelta(seconds=30), usegmt=True)
    assert retryd.parse_retry_after(past, now=now) == 0.0
    assert retryd.classify_http(503, "7").retry_after == 7.0


def test_exception_classes():
    f = retryd.failure_from_exception(retryd.RecoverableError("db down", error_code="DB", retry_after=3))
    assert (f.error_class, f.error_code, f.retry_after, f.message) == (ErrorClass.RECOVERABLE, "DB", 3, "db down")
    f = retryd.failure_from_exception(KeyError("k"))
    assert f.error_class == ErrorClass.UNSPECIFIED and f.error_code == "KeyError"
    assert retryd.failure_from_exception(ConnectionResetError()).error_class == ErrorClass.TRANSIENT


def test_requests_exceptions():
    requests = pytest.importorskip("requests")
    r = requests.Response()
    r.status_code = 429
    r.headers["Retry-After"] = "5"
    f = retryd.failure_from_exception(requests.HTTPError("too many", response=r))
    assert f.error_class == ErrorClass.TRANSIENT and f.retry_after == 5.0 and f.http_status == 429
    r.status_code = 400
    assert retryd.failure_from_exception(requests.HTTPError("bad", response=r)).error_class == ErrorClass.PERMANENT
    assert retryd.failure_from_exception(requests.ConnectionError("refused")).error_class == ErrorClass.TRANSIENT


def test_httpx_exceptions():
    httpx = pytest.importorskip("httpx")
    req = httpx.Request("GET", "http://x")
    resp = httpx.Response(503, headers={"Retry-After": "2"}, request=req)
    f = retryd.failure_from_exception(httpx.HTTPStatusError("unavailable", request=req, response=resp))
    assert f.error_class == ErrorClass.TRANSIENT and f.retry_after == 2.0
    assert retryd.failure_from_exception(httpx.ConnectError("refused")).error_class == ErrorClass.TRANSIENT
