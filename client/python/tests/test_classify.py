"""Failure reporting helpers (pure functions; no server): facts always, a class only when the
application chose one."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

import retryd
from retryd import ErrorClass


@pytest.mark.parametrize("status", [400, 404, 408, 422, 425, 429, 500, 501, 503, 504, 599])
def test_http_errors_send_the_facts_and_no_class(status):
    e = retryd.http_error(status, "7")
    assert isinstance(e, retryd.HttpError)
    f = retryd.failure_from_exception(e)
    assert f.error_class == ErrorClass.UNSPECIFIED
    assert (f.http_status, f.error_code, f.retry_after) == (status, f"HTTP_{status}", 7.0)
    assert retryd.classify_http is retryd.http_error


def test_an_explicit_class_with_a_status_is_sent():
    f = retryd.failure_from_exception(retryd.PermanentError("gone", http_status=503))
    assert (f.error_class, f.http_status) == (ErrorClass.PERMANENT, 503)


def test_success_is_not_a_failure():
    assert retryd.http_error(200) is None and retryd.http_error(302) is None


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
    assert retryd.http_error(503, "7").retry_after == 7.0


def test_exception_classes():
    f = retryd.failure_from_exception(retryd.RecoverableError("db down", error_code="DB", retry_after=3))
    assert (f.error_class, f.error_code, f.retry_after, f.message) == (ErrorClass.RECOVERABLE, "DB", 3, "db down")
    f = retryd.failure_from_exception(KeyError("k"))
    assert f.error_class == ErrorClass.UNSPECIFIED and f.error_code == "KeyError"
    f = retryd.failure_from_exception(ConnectionResetError())
    assert (f.error_class, f.error_code) == (ErrorClass.UNSPECIFIED, "ConnectionResetError")


def test_requests_exceptions():
    requests = pytest.importorskip("requests")
    r = requests.Response()
    r.status_code = 429
    r.headers["Retry-After"] = "5"
    f = retryd.failure_from_exception(requests.HTTPError("too many", response=r))
    assert f.error_class == ErrorClass.UNSPECIFIED and f.retry_after == 5.0 and f.http_status == 429
    assert f.error_code == "HTTP_429"
    f = retryd.failure_from_exception(requests.ConnectionError("refused"))
    assert (f.error_class, f.error_code) == (ErrorClass.UNSPECIFIED, "ConnectionError")


def test_httpx_exceptions():
    httpx = pytest.importorskip("httpx")
    req = httpx.Request("GET", "http://x")
    resp = httpx.Response(503, headers={"Retry-After": "2"}, request=req)
    f = retryd.failure_from_exception(httpx.HTTPStatusError("unavailable", request=req, response=resp))
    assert f.error_class == ErrorClass.UNSPECIFIED and f.retry_after == 2.0 and f.http_status == 503
    f = retryd.failure_from_exception(httpx.ConnectError("refused"))
    assert (f.error_class, f.error_code) == (ErrorClass.UNSPECIFIED, "ConnectError")
