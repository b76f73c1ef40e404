"""Guard rails for unattended runs (issue 14): --max-invalid, --max-rejected, --canary,
--notify-url (a real webhook receiver on loopback) and --metrics-file (read back with
prometheus-client's parser). Real CLI processes against the real mock server."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from importer.cli import _percent
from importer.config import over_share
from tests.conftest import (
    CUSTOMER_MAPPING,
    KEY,
    Mock,
    customers_csv,
    popen_cli,
    read_report,
    run_args,
    run_cli,
    write_csv,
)


class Receiver:
    """A webhook endpoint on loopback that keeps every JSON body it is sent."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.raw.append(data + self.path.encode())
                receiver.bodies.append(json.loads(data))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=SECRET-TOKEN-123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    return tmp_path


def rows_with_bad_crm(path: Path, n: int, bad: set[int]) -> None:
    """crm ids C1..Cn; rows in ``bad`` carry a crm id the mock rejects (``--reject-containing BAD``)."""
    write_csv(
        path, ["crm_id", "email", "total"], [[f"BAD{i}" if i in bad else f"C{i}", "", "1"] for i in range(1, n + 1)]
    )


# --- --max-invalid --------------------------------------------------------------------------


def test_max_invalid_over_the_share_sends_nothing(work: Path, mock: Mock) -> None:
    customers_csv(work / "in.csv", 200, bad=tuple(range(1, 201, 10)))  # 20 of 200: 10 %
    res = run_cli(*run_args(mock, "--max-invalid", "5%"), cwd=work)
    assert res.returncode == 2, res.stderr
    assert "20 of 200 rows (10.0%) are invalid, more than --max-invalid 5.0%: nothing was sent" in res.stderr
    assert mock.stats()["requests"] == 0
    ok = run_cli(*run_args(mock, "--max-invalid", "10"), cwd=work)  # at the limit is not over it
    assert ok.returncode == 0, ok.stderr  # and invalid rows within the share do not fail the night
    assert Counter(r["status"] for r in read_report(work / "r.csv")) == {"sent": 180, "invalid": 20}


def test_max_invalid_exactly_at_a_decimal_percentage_passes(work: Path, mock: Mock) -> None:
    """7 of 1000 is 0.7 %, not over it (in floats, 0.7 / 100 is a hair under 7 / 1000)."""
    customers_csv(work / "in.csv", 1000, bad=tuple(range(1, 9)))
    over = run_cli(*run_args(mock, "--max-invalid", "0.7%", state="over"), cwd=work)
    assert over.returncode == 2, over.stderr
    assert "8 of 1,000 rows (0.8%) are invalid, more than --max-invalid 0.7%" in over.stderr
    assert mock.stats()["requests"] == 0
    customers_csv(work / "in.csv", 1000, bad=tuple(range(1, 8)))
    at = run_cli(*run_args(mock, "--max-invalid", "0.7%", state="at"), cwd=work)
    assert at.returncode == 0, at.stderr
    assert Counter(r["status"] for r in read_report(work / "r.csv")) == {"sent": 993, "invalid": 7}


@pytest.mark.parametrize("tenths", range(1, 1000))
def test_every_percentage_allows_its_exact_share(tenths: int) -> None:
    """0.1 % .. 99.9 %, as the CLI reads them and as a library caller's float: the share
    exactly at the limit is allowed, one row more is over it (--max-invalid and
    --max-rejected share the comparison)."""
    text = f"{tenths // 10}.{tenths % 10}%"
    for limit in (_percent(text), tenths / 1000):
        assert not over_share(tenths, 1000, limit), text
        assert over_share(tenths + 1, 1000, limit), text
        assert not over_share(tenths * 37, 37_000, limit) and over_share(tenths * 37 + 1, 37_000, limit)


def test_percent_is_read_exactly() -> None:
    assert _percent("0.7%") == Fraction(7, 1000) and _percent(" 5 ") == Fraction(1, 20)
    assert _percent("100%") == 1 and _percent("0") == 0 and _percent("12.345%") == Fraction(12345, 10**5)
    for bad in ("1/3", "nan", "inf", "100.0001", "-0.1%"):
        with pytest.raises(argparse.ArgumentTypeError):
            _percent(bad)


def test_percentages_are_checked(work: Path, mock: Mock) -> None:
    customers_csv(work / "in.csv", 5)
    for bad in ("150%", "-1", "lots"):
        res = run_cli(*run_args(mock, "--max-invalid", bad), cwd=work)
        assert res.returncode == 2 and "expected a percentage" in res.stderr
    assert mock.stats()["requests"] == 0


# --- --max-rejected ---------------------------------------------------------------------------


def test_max_rejected_stops_like_the_breaker_after_100_answers(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--reject-containing", "BAD")
    rows_with_bad_crm(work / "in.csv", 2000, bad=set(range(1, 2001, 4)))  # 25 % rejected
    res = run_cli(*run_args(mock, "--max-rejected", "10%", "--concurrency", "4"), cwd=work)
    assert res.returncode == 3, res.stderr
    assert "rows answered were rejected" in res.stderr and "more than --max-rejected 10.0%" in res.stderr
    statuses = Counter(r["status"] for r in read_report(work / "r.csv"))
    answered = statuses["sent"] + statuses["rejected"]
    assert 100 <= answered < 200 and statuses["not_attempted"] > 1500 and statuses["unknown"] == 0


def test_max_rejected_under_the_share_finishes(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--reject-containing", "BAD")
    rows_with_bad_crm(work / "in.csv", 300, bad={5, 150})
    res = run_cli(*run_args(mock, "--max-rejected", "5%"), cwd=work)
    assert res.returncode == 1, res.stderr
    assert Counter(r["status"] for r in read_report(work / "r.csv")) == {"sent": 298, "rejected": 2}


# --- --canary -----------------------------------------------------------------------------------


def test_canary_rejected_stops_with_the_apis_words(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--events", "1")  # the mapping's event 77 is unknown: 404 for every row
    customers_csv(work / "in.csv", 500)
    res = run_cli(*run_args(mock, "--canary", "5"), cwd=work)
    assert res.returncode == 3, res.stderr
    assert "--canary 5: 5 of the first 5 rows were not accepted" in res.stderr
    assert "custom event 77 does not exist" in res.stderr
    assert mock.stats()["requests"] == 5
    statuses = Counter(r["status"] for r in read_report(work / "r.csv"))
    assert statuses == {"rejected": 5, "not_attempted": 495}


def test_canary_accepted_goes_on(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--latency-ms", "20")
    customers_csv(work / "in.csv", 400)
    res = run_cli(*run_args(mock, "--canary", "10"), cwd=work)
    assert res.returncode == 0, res.stderr
    received = mock.received()
    assert len(received) == 400
    # The mock records a request when it answers, 20 ms after it arrived: no row after the
    # canaries can be recorded sooner than 20 ms after the last canary's answer.
    canaries = {f"C{i}" for i in range(1, 11)}
    last_canary = max(r["at"] for r in received if r["body"]["customerCrmId"] in canaries)
    first_other = min(r["at"] for r in received if r["body"]["customerCrmId"] not in canaries)
    assert first_other - last_canary >= 0.015


def test_canary_one_bad_among_the_first_rows(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--reject-containing", "BAD")
    rows_with_bad_crm(work / "in.csv", 300, bad={3})
    res = run_cli(*run_args(mock, "--canary", "20"), cwd=work)
    assert res.returncode == 3 and "1 of the first 20 rows were not accepted" in res.stderr
    assert mock.stats()["requests"] == 20  # the canaries went out; nothing after them


# --- --notify-url ---------------------------------------------------------------------------------


RAW_EMAIL = re.compile(r"[\w.%+-]{2}@example\.com", re.IGNORECASE)  # a masked one is j***@example.com


def check_no_secrets(receiver: Receiver) -> None:
    assert receiver.raw
    for raw in receiver.raw:
        text = raw.decode()
        assert KEY not in text and not RAW_EMAIL.search(text), text


def test_a_key_and_an_email_in_paths_stay_out_of_notifications_summaries_metrics_and_output(
    work: Path, mock: Mock, receiver: Receiver
) -> None:
    """Paths are quoted in the notification, --summary-json, the metrics file and the
    summary on stdout; a path can carry the key (a folder named after it) or an email
    (an export per customer): neither may go out as it is."""
    folder = work / f"drop-{KEY}"
    folder.mkdir()
    customers_csv(folder / "john.doe@example.com.csv", 20)
    shutil.copy(work / "m.yaml", work / f"m-{KEY}.yaml")
    res = run_cli(
        "run", f"{folder.name}/john.doe@example.com.csv", "--mapping", f"m-{KEY}.yaml", "--base-url", mock.url,
        "--state-dir", "state", "--report", "jane.roe@example.com.csv", "--errors", f"e-{KEY}.csv",
        "--notify-url", receiver.url, "--summary-json", "s.json", "--metrics-file", "m.prom", cwd=work,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert mock.stats()["requests"] == 20
    check_no_secrets(receiver)
    (body,) = receiver.bodies
    assert body["inputs"][0]["file"].endswith("***@example.com.csv")  # the path was there, masked
    assert body["report"].endswith("j***@example.com.csv") and body["mapping"] == "m-***.yaml"
    for text in (res.stdout, res.stderr, (work / "s.json").read_text(), (work / "m.prom").read_text()):
        assert KEY not in text and not RAW_EMAIL.search(text), text
    assert "report: j***@example.com.csv" in res.stdout


def test_notify_on_success_and_on_rows_not_sent(work: Path, mock_factory: Any, receiver: Receiver) -> None:
    mock = mock_factory("--reject-containing", "BAD")
    customers_csv(work / "in.csv", 50)
    ok = run_cli(*run_args(mock, "--notify-url", receiver.url, "--summary-json", "s.json"), cwd=work)
    assert ok.returncode == 0, ok.stderr
    (body,) = receiver.bodies
    summary = json.loads((work / "s.json").read_text())
    assert {k: body[k] for k in summary} == summary  # the --summary-json content, plus text
    assert body["exit_code"] == 0 and body["counts"] == {"sent": 50}
    assert body["text"].startswith("ecdp-import run on ") and "every row delivered (exit 0)" in body["text"]
    rows_with_bad_crm(work / "in.csv", 10, bad={2})
    some = run_cli(*run_args(mock, "--notify-url", receiver.url), cwd=work)
    assert some.returncode == 1
    assert receiver.bodies[1]["exit_code"] == 1 and receiver.bodies[1]["counts"] == {"sent": 9, "rejected": 1}
    assert "a retry cannot help" in receiver.bodies[1]["text"]
    check_no_secrets(receiver)


def test_notify_says_retry_later_for_an_outage(work: Path, mock_factory: Any, receiver: Receiver) -> None:
    down = mock_factory("--fail-after", "10")
    customers_csv(work / "in.csv", 60)
    res = run_cli(*run_args(down, "--max-attempts", "1", "--notify-url", receiver.url), cwd=work)
    assert res.returncode == 75, res.stderr
    (body,) = receiver.bodies
    assert body["exit_code"] == 75 and "rerun later (exit 75)" in body["text"]
    check_no_secrets(receiver)


def test_notify_on_abort_and_on_a_refused_run(work: Path, mock_factory: Any, receiver: Receiver) -> None:
    mock = mock_factory("--events", "1")
    customers_csv(work / "in.csv", 50)
    aborted = run_cli(*run_args(mock, "--canary", "2", "--notify-url", receiver.url), cwd=work)
    assert aborted.returncode == 3
    assert receiver.bodies[0]["exit_code"] == 3 and "aborted" in receiver.bodies[0]["text"]
    assert "does not exist" not in json.dumps(receiver.bodies[0])  # the API's words stay out
    refused = run_cli(*run_args(mock, "--mapping", "missing.yaml", "--notify-url", receiver.url), cwd=work)
    assert refused.returncode == 2
    assert receiver.bodies[1]["exit_code"] == 2 and "missing.yaml" in receiver.bodies[1]["error"]
    check_no_secrets(receiver)


def test_notify_on_sigterm(work: Path, mock_factory: Any, receiver: Receiver) -> None:
    mock = mock_factory("--latency-ms", "20")
    customers_csv(work / "in.csv", 3000)
    proc = popen_cli(*run_args(mock, "--notify-url", receiver.url), cwd=work)
    deadline = time.monotonic() + 30
    while mock.stats()["requests"] < 20:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    (body,) = receiver.bodies
    assert body["exit_code"] == 143 and body["stop_reason"] == "sigterm" and "SIGTERM" in body["text"]
    assert body["counts"]["sent"] == len(mock.received())


def test_a_failing_webhook_changes_nothing_and_its_secret_is_not_shown(work: Path, mock: Mock) -> None:
    customers_csv(work / "in.csv", 10)
    broken = Receiver(status=500)
    try:
        res = run_cli(
            *run_args(mock, "--notify-url", broken.url, "--notify-url", "http://127.0.0.1:9/x?k=S3"), cwd=work
        )
    finally:
        broken.close()
    assert res.returncode == 0, res.stderr
    assert "notification to http://127.0.0.1:" in res.stderr and "failed: HTTP 500" in res.stderr
    assert "SECRET-TOKEN-123" not in res.stderr + res.stdout and "k=S3" not in res.stderr


# --- --metrics-file ----------------------------------------------------------------------------


def metrics(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def test_metrics_file_is_prometheus_text_and_keeps_the_last_success(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--reject-containing", "BAD")
    customers_csv(work / "in.csv", 40)
    before = time.time()
    assert run_cli(*run_args(mock, "--metrics-file", "m/ecdp.prom"), cwd=work).returncode == 0
    got = metrics(work / "m" / "ecdp.prom")
    m = (("mapping", "m.yaml"),)
    assert got[("ecdp_import_last_run_rows", (("mapping", "m.yaml"), ("status", "sent")))] == 40
    assert got[("ecdp_import_last_run_exit_code", m)] == 0
    assert got[("ecdp_import_last_run_requests", m)] == 40
    success = got[("ecdp_import_last_success_timestamp_seconds", m)]
    assert before <= success <= time.time()
    rows_with_bad_crm(work / "in.csv", 10, bad={1})
    assert run_cli(*run_args(mock, "--metrics-file", "m/ecdp.prom"), cwd=work).returncode == 1
    again = metrics(work / "m" / "ecdp.prom")
    assert again[("ecdp_import_last_run_exit_code", m)] == 1
    assert again[("ecdp_import_last_run_rows", (("mapping", "m.yaml"), ("status", "rejected")))] == 1
    assert again[("ecdp_import_last_success_timestamp_seconds", m)] == success  # carried over
    assert not [p for p in (work / "m").iterdir() if p.name != "ecdp.prom"]  # no temporary left


def test_stdout_keeps_numbers_a_phone_mask_would_break(capsys: Any) -> None:
    """Review: masking every stdout line turned status --json's 1234567 rows into 123***67."""
    from importer.cli import _out

    _out('{"rows": 1234567, "generation": "1701968512345678"}')
    assert json.loads(capsys.readouterr().out) == {"rows": 1234567, "generation": "1701968512345678"}


def test_summaries_mask_no_phone_in_the_names_of_files_but_still_in_messages() -> None:
    """Review: --summary-json and the notification turned an input folder 1234567 into 123***67."""
    from importer.errors import scrubbed

    summary = {
        "inputs": [{"file": "drops/20261207 1234567/orders 5551234567.csv"}],
        "mapping": "m 5551234567.yaml",
        "report": "r +48 600 123 456.csv",
        "error": "API said: phone +48 600 123 456 is taken",
    }
    got = scrubbed(summary, ["SECRETKEY"])
    assert got["inputs"][0]["file"] == summary["inputs"][0]["file"]
    assert got["mapping"] == summary["mapping"] and got["report"] == summary["report"]
    assert "600 123" not in got["error"]
    named = scrubbed({"file": "in/jane@example.com/SECRETKEY.csv"}, ["SECRETKEY"])["file"]
    assert "jane" not in named and "SECRETKEY" not in named and named.endswith("@example.com/***.csv")
