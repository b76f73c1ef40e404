"""Crash safety and resume, with real processes: kill -9, SIGTERM/SIGINT, outages, reruns."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CUSTOMER_MAPPING, Mock, customers_csv, popen_cli, read_report, run_cli

pytestmark = pytest.mark.usefixtures("store")

ROWS = 300


def args_for(mock: Mock, *inputs: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        "run",
        *(inputs or ("in.csv",)),
        "--mapping",
        "m.yaml",
        "--base-url",
        mock.url,
        "--state-dir",
        "state",
        "--report",
        "report.csv",
        *extra,
    ]


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def deliveries(*mocks: Mock) -> Counter[str]:
    return Counter(r["body"]["customerCrmId"] for m in mocks for r in m.received())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", ROWS)
    return tmp_path


@pytest.mark.parametrize("after", [1, 60, 240])
def test_kill_9_mid_run_loses_nothing_and_sends_nothing_twice(workdir: Path, mock_factory: Any, after: int) -> None:
    mock = mock_factory("--latency-ms", "15")
    proc = popen_cli(*args_for(mock, extra=("--concurrency", "8")), cwd=workdir)
    wait_for(lambda: mock.stats()["requests"] >= after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.1)  # let the mock finish the requests the dead client left in flight

    rerun = run_cli(*args_for(mock), cwd=workdir)
    assert rerun.returncode in (0, 75), rerun.stderr  # 75 while rows are unknown
    report = {r["customer_ref"]: r for r in read_report(workdir / "report.csv")}
    got = deliveries(mock)
    assert len(report) == ROWS
    assert max(got.values()) == 1  # nothing twice
    unknown = [ref for ref, r in report.items() if r["status"] == "unknown"]
    assert len(unknown) <= 8
    assert all("--resend-unknown" in report[ref]["detail"] for ref in unknown)
    assert (rerun.returncode == 75) == bool(unknown)
    if unknown:
        assert f"next: {len(unknown)} row{'s' if len(unknown) > 1 else ''} unknown" in rerun.stdout
    for ref, r in report.items():
        assert r["status"] in ("sent", "unknown"), r
        if r["status"] == "sent":
            assert got[ref] == 1
    # Every row not delivered is one of the unknown ones: nothing was lost silently.
    assert {f"C{i}" for i in range(1, ROWS + 1)} - set(got) <= set(unknown)

    final = run_cli(*args_for(mock, extra=("--resend-unknown",)), cwd=workdir)
    assert final.returncode == 0, final.stderr
    got = deliveries(mock)
    assert set(got) == {f"C{i}" for i in range(1, ROWS + 1)}
    assert all(n == 1 for ref, n in got.items() if ref not in unknown)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_drains_in_flight_and_leaves_no_unknown(workdir: Path, mock_factory: Any, sig: int, code: int) -> None:
    mock = mock_factory("--latency-ms", "30")
    proc = popen_cli(*args_for(mock, extra=("--concurrency", "8", "--summary-json", "s.json")), cwd=workdir)
    wait_for(lambda: mock.stats()["requests"] >= 40)
    started = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert time.monotonic() - started < 5
    assert "rerun the same command to continue" in stderr
    report = read_report(workdir / "report.csv")
    statuses = Counter(r["status"] for r in report)
    assert len(report) == ROWS and "unknown" not in statuses
    assert statuses["sent"] == len(mock.received()) and statuses["not_attempted"] > 0
    assert json.loads((workdir / "s.json").read_text())["exit_code"] == code

    rerun = run_cli(*args_for(mock), cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    assert deliveries(mock) == Counter({f"C{i}": 1 for i in range(1, ROWS + 1)})


def test_outage_trips_the_breaker_and_a_rerun_sends_exactly_the_rest(workdir: Path, mock_factory: Any) -> None:
    down = mock_factory("--fail-after", "50", name="down.jsonl")
    first = run_cli(
        *args_for(down, extra=("--max-attempts", "2", "--backoff-base", "0.01", "--concurrency", "4")), cwd=workdir
    )
    assert first.returncode == 75  # the breaker: a later run can deliver the rest
    assert "the API looks unavailable" in first.stderr
    statuses = Counter(r["status"] for r in read_report(workdir / "report.csv"))
    assert statuses["sent"] == 50 and statuses["failed"] >= 20 and statuses["not_attempted"] > 0
    assert sum(statuses.values()) == ROWS

    healthy = mock_factory(name="healthy.jsonl", replacing=down)
    second = run_cli(*args_for(healthy), cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert set(deliveries(healthy)) == {f"C{i}" for i in range(1, ROWS + 1)} - set(deliveries(down))
    assert deliveries(down, healthy) == Counter({f"C{i}": 1 for i in range(1, ROWS + 1)})
    report = read_report(workdir / "report.csv")
    assert {r["status"] for r in report} == {"sent"}
    assert any(int(r["attempts"]) > 1 for r in report)  # attempts add up over runs


def test_finished_import_sends_nothing_and_next_nights_file_is_new(workdir: Path, mock: Mock) -> None:
    assert run_cli(*args_for(mock), cwd=workdir).returncode == 0
    before = mock.stats()["requests"]
    again = run_cli(*args_for(mock), cwd=workdir)
    assert again.returncode == 0
    assert mock.stats()["requests"] == before
    assert {r["status"] for r in read_report(workdir / "report.csv")} == {"sent"}

    customers_csv(workdir / "in.csv", 10)  # the nightly drop reuses its file name
    (workdir / "in.csv").write_text((workdir / "in.csv").read_text().replace("C", "N"))
    night2 = run_cli(*args_for(mock), cwd=workdir)
    assert night2.returncode == 0, night2.stderr
    assert mock.stats()["requests"] == before + 10


def test_edited_copy_of_a_half_sent_file_is_refused(workdir: Path, mock_factory: Any) -> None:
    down = mock_factory("--fail-after", "30")
    assert run_cli(*args_for(down, extra=("--max-attempts", "1")), cwd=workdir).returncode == 75
    text = (workdir / "in.csv").read_text()
    (workdir / "in.csv").write_text(text.replace("User5@", "Fixed5@"))
    refused = run_cli(*args_for(down), cwd=workdir)
    assert refused.returncode == 2
    assert "unfinished" in refused.stderr and "--new-import" in refused.stderr
    healthy = mock_factory(name="healthy.jsonl", replacing=down)
    forced = run_cli(*args_for(healthy, extra=("--new-import",)), cwd=workdir)
    assert forced.returncode == 0, forced.stderr
    # The new import sends every row, except the events the ledger knows were sent already.
    statuses = Counter(r["status"] for r in read_report(workdir / "report.csv"))
    assert statuses["sent"] == len(healthy.received()) and statuses["sent"] + statuses["duplicate"] == ROWS
    assert statuses["duplicate"] in (29, 30) and deliveries(down, healthy).most_common(1)[0][1] <= 2


def test_a_second_run_on_the_same_state_dir_is_refused(workdir: Path, mock_factory: Any) -> None:
    mock = mock_factory("--latency-ms", "50")
    first = popen_cli(*args_for(mock, extra=("--concurrency", "2")), cwd=workdir)
    wait_for(lambda: mock.stats()["requests"] >= 2)
    second = run_cli(*args_for(mock), cwd=workdir)
    assert second.returncode == 2
    assert "another ecdp-import run is using the state " in second.stderr and "wait for it to finish" in second.stderr
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    assert run_cli(*args_for(mock), cwd=workdir).returncode == 0
    assert deliveries(mock) == Counter({f"C{i}": 1 for i in range(1, ROWS + 1)})


def test_rejected_invalid_and_errors_file_across_resumes(tmp_path: Path, mock_factory: Any) -> None:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING.replace("custom_event_id: 77", "custom_event_id: {column: ev}"))
    (tmp_path / "in.csv").write_text(
        'crm_id,email,total,ev\nC1,a@example.com,1,77\nC2,b@example.com,2,78\nC3,c@example.com,"3,5",77\n'
    )
    strict = mock_factory("--events", "77")
    extra = ("--errors", "errors.csv")
    assert run_cli(*args_for(strict, extra=extra), cwd=tmp_path).returncode == 1
    assert run_cli(*args_for(strict, extra=extra), cwd=tmp_path).returncode == 1
    assert len(strict.received()) == 1 and strict.stats()["requests"] == 2  # the rejected row was not resent
    errors = read_report(tmp_path / "errors.csv")
    assert [(e["crm_id"], e["_status"]) for e in errors] == [("C2", "rejected"), ("C3", "invalid")]
    assert [r["attempts"] for r in read_report(tmp_path / "report.csv")] == ["1", "1", "0"]

    # A fixed mapping re-validates the invalid row; --retry-rejected resends the rejected one.
    (tmp_path / "m.yaml").write_text(
        (tmp_path / "m.yaml").read_text().replace("type: Money, column: total", "type: String, column: total")
    )
    lenient = mock_factory(name="lenient.jsonl", replacing=strict)
    final = run_cli(*args_for(lenient, extra=(*extra, "--retry-rejected")), cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert sorted(r["body"]["customerCrmId"] for r in lenient.received()) == ["C2", "C3"]
    assert read_report(tmp_path / "errors.csv") == []
    assert [r["attempts"] for r in read_report(tmp_path / "report.csv")] == ["1", "2", "1"]


def test_several_inputs_resume_independently(tmp_path: Path, mock_factory: Any) -> None:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "a.csv", 40)
    (tmp_path / "b.csv").write_text(customers_csv(tmp_path / "tmp.csv", 40).read_text().replace("C", "B"))
    mock = mock_factory()
    assert run_cli(*args_for(mock, "a.csv"), cwd=tmp_path).returncode == 0
    both = run_cli(*args_for(mock, "a.csv", "b.csv", extra=("--summary-json", "s.json")), cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    got = deliveries(mock)
    assert len(got) == 80 and max(got.values()) == 1
    report = read_report(tmp_path / "report.csv")
    assert [r["source_file"] for r in report] == ["a.csv"] * 40 + ["b.csv"] * 40
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [i["file"] for i in summary["inputs"]] == ["a.csv", "b.csv"]
    assert all(len(i["sha256"]) == 64 for i in summary["inputs"])
    assert summary["rows_this_run"] == 40


def test_sigterm_on_a_file_larger_than_the_sample_still_reports_every_row(tmp_path: Path, mock_factory: Any) -> None:
    # 3,000 rows do not fit the 64 KiB sample, so after the stop the rest is counted by reading.
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 3000)
    assert (tmp_path / "in.csv").stat().st_size > 64 * 1024
    mock = mock_factory("--latency-ms", "30")
    proc = popen_cli(*args_for(mock, extra=("--concurrency", "4")), cwd=tmp_path)
    wait_for(lambda: mock.stats()["requests"] >= 20)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    report = read_report(tmp_path / "report.csv")
    assert [int(r["row_number"]) for r in report] == list(range(1, 3001))
    statuses = Counter(r["status"] for r in report)
    assert statuses["sent"] == len(mock.received()) and statuses["not_attempted"] == 3000 - statuses["sent"]
