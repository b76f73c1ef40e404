"""Each event once across files (issue 10): the delivery ledger, `status` and `prune`,
end to end against the real mock server with real processes."""

from __future__ import annotations

import csv
import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Mock, popen_cli, read_report, run_cli, state_sql

pytestmark = pytest.mark.usefixtures("store")

MAPPING = """\
endpoint: customer
custom_event_id: 77
customer: {crm_id: crm_id}
data_fields:
  - {name: orderId, type: String, column: order_id}
  - {name: total, type: Money, column: total}
"""


def write_orders(path: Path, ids: range, *, reorder: bool = False, quote_all: bool = False) -> Path:
    """Orders ``ids``; optionally another column order, every field quoted, rows reversed."""
    header = ["order_id", "crm_id", "total"]
    rows = [[f"O{i}", f"C{i % 97}", f"{i}.5"] for i in ids]
    if reorder:
        header = ["total", "crm_id", "order_id"]
        rows = [[t, c, o] for o, c, t in reversed(rows)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerows(rows)
    return path


def run(work: Path, mock: Mock, name: str, *extra: str, report: str = "r.csv") -> Any:
    return run_cli(
        "run", name, "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state",
        "--report", report, "--no-progress", *extra, cwd=work,
    )  # fmt: skip


def order_ids(mock: Mock) -> Counter[str]:
    return Counter(next(f["value"] for f in r["body"]["dataFields"] if f["name"] == "orderId") for r in mock.received())


def kill_9_once(work: Path, mock: Mock, name: str, after_requests: int) -> None:
    """Start a run of ``name`` and kill -9 it once the mock has seen ``after_requests``."""
    proc = popen_cli("run", name, "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state", cwd=work)
    deadline = time.monotonic() + 30
    while mock.stats()["requests"] < after_requests:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.2)  # let the mock finish what the dead client left in flight


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(MAPPING)
    return tmp_path


def test_three_nightly_files_with_overlapping_windows_send_each_event_once(work: Path, mock: Mock) -> None:
    write_orders(work / "day1.csv", range(1, 1001))
    write_orders(work / "day2.csv", range(501, 1501))
    write_orders(work / "day3.csv", range(1001, 2001), reorder=True, quote_all=True)
    for day in ("day1", "day2", "day3"):
        res = run(work, mock, f"{day}.csv", report=f"{day}.report.csv")
        assert res.returncode == 0, res.stderr
    got = order_ids(mock)
    assert len(got) == 2000 and max(got.values()) == 1
    day2 = read_report(work / "day2.report.csv")
    assert Counter(r["status"] for r in day2) == {"duplicate": 500, "sent": 500}
    first = next(r for r in day2 if r["status"] == "duplicate")
    assert first["row_number"] == "1" and "already sent by" in first["detail"] and "day1.csv row 501" in first["detail"]
    day3 = read_report(work / "day3.report.csv")
    assert Counter(r["status"] for r in day3) == {"duplicate": 500, "sent": 500}


def test_a_file_caught_mid_copy_sends_only_its_second_half_the_next_night(work: Path, mock: Mock) -> None:
    whole = write_orders(work / "whole.csv", range(1, 801)).read_text()
    lines = whole.splitlines(keepends=True)
    (work / "drop.csv").write_text("".join(lines[:401]))  # header + 400 rows: the copy was cut
    assert run(work, mock, "drop.csv").returncode == 0
    (work / "drop.csv").write_text(whole)
    res = run(work, mock, "drop.csv")
    assert res.returncode == 0, res.stderr
    got = order_ids(mock)
    assert len(got) == 800 and max(got.values()) == 1


def test_duplicate_rows_inside_one_file(work: Path, mock: Mock) -> None:
    text = write_orders(work / "a.csv", range(1, 51)).read_text()
    (work / "in.csv").write_text(text + "".join(text.splitlines(keepends=True)[1:11]))
    res = run(work, mock, "in.csv")
    assert res.returncode == 0, res.stderr
    assert Counter(r["status"] for r in read_report(work / "r.csv")) == {"sent": 50, "duplicate": 10}
    assert len(mock.received()) == 50


def test_a_dedup_key_names_the_event_and_none_turns_it_off(work: Path, mock: Mock) -> None:
    (work / "m.yaml").write_text(MAPPING + "dedup: {key: [order_id]}\n")
    write_orders(work / "a.csv", range(1, 21))
    rows = (work / "a.csv").read_text().replace(".5\n", ".75\n")  # a corrected total: the same orders
    (work / "b.csv").write_text(rows)
    assert run(work, mock, "a.csv").returncode == 0
    res = run(work, mock, "b.csv")
    assert res.returncode == 0 and Counter(r["status"] for r in read_report(work / "r.csv")) == {"duplicate": 20}
    (work / "m.yaml").write_text(MAPPING + "dedup: none\n")
    write_orders(work / "c.csv", range(1, 21), reorder=True)
    assert run(work, mock, "c.csv").returncode == 0
    assert len(mock.received()) == 40


def test_no_dedup_resends_on_purpose_and_says_so(work: Path, mock: Mock) -> None:
    write_orders(work / "a.csv", range(1, 11))
    write_orders(work / "b.csv", range(1, 11), reorder=True)
    assert run(work, mock, "a.csv").returncode == 0
    res = run(work, mock, "b.csv", "--no-dedup")
    assert res.returncode == 0 and "dedup off (--no-dedup)" in res.stderr
    assert len(mock.received()) == 20


def test_rejected_rows_are_not_in_the_ledger_and_a_fixed_export_sends_them(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--events", "78")  # event 77 is unknown: every row is rejected (404)
    write_orders(work / "a.csv", range(1, 6))
    assert run(work, mock, "a.csv").returncode == 1
    (work / "m.yaml").write_text(MAPPING.replace("77", "78"))
    write_orders(work / "b.csv", range(1, 6), reorder=True)
    assert run(work, mock, "b.csv").returncode == 0
    assert len(mock.received()) == 5


def test_unknown_rows_hold_their_identity_across_files(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--latency-ms", "30")
    write_orders(work / "a.csv", range(1, 301))
    kill_9_once(work, mock, "a.csv", after_requests=40)
    write_orders(work / "b.csv", range(1, 301), reorder=True)
    res = run(work, mock, "b.csv")
    assert res.returncode == 0, res.stderr
    got = order_ids(mock)
    assert max(got.values()) == 1  # nothing twice, the unknown ones included
    statuses = Counter(r["status"] for r in read_report(work / "r.csv"))
    held = statuses["duplicate"]
    assert held >= 1 and statuses["sent"] + held == 300
    res = run(work, mock, "b.csv", "--resend-unknown")
    assert res.returncode == 0
    assert len(order_ids(mock)) == 300


def test_status_lists_imports_newest_first_and_prune_drops_finished_old_ones(work: Path, mock_factory: Any) -> None:
    mock = mock_factory()
    write_orders(work / "a.csv", range(1, 11))
    write_orders(work / "b.csv", range(11, 21))
    assert run(work, mock, "a.csv").returncode == 0
    assert run(work, mock, "b.csv").returncode == 0
    down = mock_factory("--fail-after", "0", name="down.jsonl")
    write_orders(work / "c.csv", range(21, 61))
    assert run(work, down, "c.csv", "--max-attempts", "1").returncode == 75  # unfinished: the breaker
    res = run_cli("status", "--state-dir", "state", "--json", cwd=work)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [Path(i["file"]).name for i in doc] == ["c.csv", "b.csv", "a.csv"]
    assert doc[0]["finished"] is False and doc[2]["counts"] == {"sent": 10}
    text = run_cli("status", "--state-dir", "state", cwd=work).stdout
    assert "unfinished" in text and "a.csv" in text
    state_sql(work, "state", "UPDATE imports SET created_at = '2020-01-01T00:00:00+00:00', finished_at = '2020-01-02T00:00:00+00:00'")  # fmt: skip
    dry = run_cli("prune", "--older-than", "90d", "--state-dir", "state", "--dry-run", cwd=work)
    assert dry.returncode == 0 and "would drop 2 finished import(s)" in dry.stdout
    res = run_cli("prune", "--older-than", "90d", "--state-dir", "state", cwd=work)
    assert res.returncode == 0 and "dropped 2 finished import(s)" in res.stdout
    doc = json.loads(run_cli("status", "--state-dir", "state", "--json", cwd=work).stdout)
    assert [Path(i["file"]).name for i in doc] == ["c.csv"]  # the unfinished one is kept
    write_orders(work / "a2.csv", range(1, 11), reorder=True)  # a pruned window's events go again
    assert run(work, mock, "a2.csv").returncode == 0
    assert len(mock.received()) == 30


def test_an_import_whose_rows_are_all_duplicates_is_finished(work: Path, mock: Mock) -> None:
    """Mutation pass (issue 22): ``duplicate`` left out of the final statuses passed every
    test. Such an import would stay unfinished for ever: never pruned, its bucket object
    downloaded again every night, `status` saying unfinished."""
    write_orders(work / "a.csv", range(1, 11))
    write_orders(work / "b.csv", range(1, 11), reorder=True)  # a re-export: the same events
    assert run(work, mock, "a.csv").returncode == 0
    assert run(work, mock, "b.csv").returncode == 0
    doc = json.loads(run_cli("status", "--state-dir", "state", "--json", cwd=work).stdout)
    assert [(Path(i["file"]).name, i["finished"], i["counts"]) for i in doc] == [
        ("b.csv", True, {"duplicate": 10}),
        ("a.csv", True, {"sent": 10}),
    ]
    assert doc[0]["finished_at"] is not None and len(mock.received()) == 10


def test_a_twin_never_looked_at_before_the_run_stopped_is_reported_not_attempted(work: Path, mock_factory: Any) -> None:
    """Mutation pass (issue 22): the report dropped rows missing from the middle of the
    journal and no test noticed. Row 2, a twin of row 1, waits for row 1's outcome; the
    API goes down, the breaker stops the run before row 2 is looked at again: row 2 is in
    the report, not_attempted, and the rerun sends nothing twice."""
    rows = [["O1", "C1", "1.00"], ["O1", "C1", "1.00"], *([f"O{i}", f"C{i}", "1.00"] for i in range(3, 31))]
    with (work / "t.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["order_id", "crm_id", "total"], *rows])
    down = mock_factory("--fail-after", "1")
    assert run(work, down, "t.csv", "--max-attempts", "1", "--concurrency", "1").returncode == 75
    report = read_report(work / "r.csv")
    assert [int(r["row_number"]) for r in report] == list(range(1, 31))
    assert report[1]["status"] == "not_attempted" and report[0]["status"] == "sent"
    healthy = mock_factory(name="healthy.jsonl", replacing=down)
    assert run(work, healthy, "t.csv").returncode == 0
    assert order_ids(down) + order_ids(healthy) == Counter({f"O{i}": 1 for i in [1, *range(3, 31)]})
    assert Counter(r["status"] for r in read_report(work / "r.csv")) == {"sent": 29, "duplicate": 1}


def test_kill_9_in_a_deduplicated_run_loses_and_repeats_nothing(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--latency-ms", "15")
    write_orders(work / "a.csv", range(1, 401))
    write_orders(work / "b.csv", range(201, 601))
    assert run(work, mock, "a.csv").returncode == 0
    kill_9_once(work, mock, "b.csv", after_requests=460)
    res = run(work, mock, "b.csv")
    assert res.returncode in (0, 75), res.stderr  # 75 while rows are unknown
    report = read_report(work / "r.csv")
    statuses = Counter(r["status"] for r in report)
    assert statuses["duplicate"] == 200 and statuses["unknown"] <= 8
    got = order_ids(mock)
    assert max(got.values()) == 1
    unknown = {int(r["row_number"]) + 200 for r in report if r["status"] == "unknown"}
    assert {f"O{i}" for i in range(1, 601)} - set(got) <= {f"O{i}" for i in unknown}


def test_a_held_row_is_not_sent_once_its_holder_was_pruned(work: Path, mock_factory: Any) -> None:
    """Review: a held duplicate, looked at again with --resend-unknown after the row that
    held it was resent and pruned, went out a second time."""
    slow = mock_factory("--latency-ms", "3000")
    write_orders(work / "u.csv", range(1, 2))
    kill_9_once(work, slow, "u.csv", after_requests=1)  # O1 on the wire: unknown
    mock = mock_factory(name="healthy.jsonl", replacing=slow)
    write_orders(work / "h.csv", range(1, 3), reorder=True)
    assert run(work, mock, "h.csv").returncode == 0  # O1 held by u.csv's unknown row, O2 sent
    assert run(work, mock, "u.csv", "--resend-unknown").returncode == 0  # O1 checked and resent
    state_sql(work, "state", "UPDATE imports SET created_at = '2020-01-01T00:00:00+00:00', finished_at = '2020-01-01T00:00:00+00:00' WHERE path LIKE '%u.csv'")  # fmt: skip
    assert "dropped 1 finished import" in run_cli("prune", "--older-than", "30d", "--state-dir", "state", cwd=work).stdout  # fmt: skip
    res = run(work, mock, "h.csv", "--resend-unknown")
    assert res.returncode == 0, res.stderr
    assert order_ids(mock) == Counter({"O1": 1, "O2": 1})
    assert {r["status"] for r in read_report(work / "r.csv")} == {"sent", "duplicate"}
