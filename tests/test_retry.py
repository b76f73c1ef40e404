from __future__ import annotations

from datetime import UTC, datetime

import pytest

from importer.retry import Backoff, Verdict, classify, parse_problem, retry_after_seconds


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SENT),
        (201, Verdict.SENT),
        (204, Verdict.SENT),
        (301, Verdict.REJECT),
        (302, Verdict.REJECT),
        (400, Verdict.REJECT),
        (404, Verdict.REJECT),
        (409, Verdict.REJECT),
        (422, Verdict.REJECT),
        (401, Verdict.ABORT),
        (403, Verdict.ABORT),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (504, Verdict.RETRY),
        (501, Verdict.REJECT),
        (505, Verdict.REJECT),
        (418, Verdict.REJECT),
    ],
)
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Thu, 26 Nov 2026 10:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 26 Nov 2026 09:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_backoff_is_capped_full_jitter() -> None:
    highs: list[float] = []
    backoff = Backoff(base=0.5, cap=4.0, rand=lambda lo, hi: highs.append(hi) or hi)
    assert [backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert Backoff(rand=lambda lo, hi: lo)(3) == 0.0


def test_problem_bodies_list_or_map_errors() -> None:
    listed = b'{"title":"One or more validation errors occurred.","status":400,"substatus":"CustomerInvalidModelState","detail":"bad","errors":["x is bad"]}'
    assert parse_problem(listed) == (
        "CustomerInvalidModelState",
        "One or more validation errors occurred. | bad | x is bad",
    )
    mapped = b'{"title":"Invalid","errors":{"customerEmail":["too long","not an email"]}}'
    assert parse_problem(mapped) == ("", "Invalid | customerEmail: too long; not an email")
    assert parse_problem(b"<html>gateway</html>") == ("", "<html>gateway</html>")
    assert parse_problem(b"") == ("", "")
    assert parse_problem(b"[1]") == ("", "")


def test_problem_details_never_echo_emails_or_phones() -> None:
    body = b'{"title":"Bad","errors":{"customerEmail":["\'anna.k@example.com\' is taken"],"customerPhone":["+48600123456 invalid"]}}'
    _, detail = parse_problem(body)
    assert "anna.k@example.com" not in detail and "+48600123456" not in detail
    assert "a***@example.com" in detail and "+48***56" in detail
