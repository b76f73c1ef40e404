"""End to end: the CLI as a process against the real mock server over loopback HTTP."""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import (
    CUSTOMER_MAPPING,
    KEY,
    Mock,
    cli_env,
    customers_csv,
    read_report,
    run_cli,
    write_csv,
)

pytestmark = pytest.mark.usefixtures("store")

ORDERS_MAPPING = """\
endpoint: customer
custom_event_id: 4242
timezone: Europe/Warsaw
customer:
  id: customer_id
  email_md5: {hash_of: email}
  email_sha256: {hash_of: email}
  phone: {column: phone, default_region: PL}
  crm_id: crm_id
data_fields:
  - {name: orderTotal, type: Money, column: total, required: true}
  - {name: orderedAt, type: DateTime, column: ordered_at}
  - {name: day, type: Date, column: day, format: "%d.%m.%Y"}
  - {name: paid, type: Boolean, column: paid}
  - {name: url, type: URL, column: url}
  - {name: qty, type: Number, column: qty}
  - {name: channel, type: String, value: web}
"""


def run_args(mock: Mock, tmp: Path, *inputs: str, mapping: str = "m.yaml", extra: tuple[str, ...] = ()) -> list[str]:
    return [
        "run",
        *inputs,
        "--mapping",
        mapping,
        "--base-url",
        mock.url,
        "--state-dir",
        str(tmp / "state"),
        "--report",
        str(tmp / "report.csv"),
        *extra,
    ]


def test_every_valid_row_arrives_once_with_the_exact_body(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text(ORDERS_MAPPING)
    write_csv(
        tmp_path / "orders.csv",
        ["customer_id", "email", "phone", "crm_id", "total", "ordered_at", "day", "paid", "url", "qty"],
        [
            [
                "00017",
                "  Anna@Example.COM ",
                "600 123 456",
                "00123",
                "19.989999",
                "2026-11-26 10:00:00",
                "26.11.2026",
                "Yes",
                "https://shop.example.com/p/1",
                "3",
            ],
            ["", "", "", "CRM-2", "5", "", "", "", "", ""],
            ["18", "bad-email", "", "", "1", "", "", "", "", ""],  # invalid: never sent
            ["19", "", "", "", "12,3,4", "", "", "", "", ""],  # invalid Money
            ["20", "", "", "", "7.5", "2026-07-01T10:00:00+02:00", "", "0", "javascript:alert(1)", ""],  # invalid URL
        ],
    )
    result = run_cli(*run_args(mock, tmp_path, "orders.csv"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    received = mock.received()  # two requests in flight together arrive in either order
    assert sorted((r["body"] for r in received), key=lambda b: b["customerCrmId"]) == [
        {
            "customEventId": 4242,
            "customerId": 17,
            "customerEmailMd5": "6b56db1f84a3997b902509d3fbf0a306",
            "customerEmailSha256": "f7d54c22dda5b1780276601cd005909b70543fc4a6ba72d735b4cb9bbb611f01",
            "customerPhone": "+48600123456",
            "customerCrmId": "00123",
            "dataFields": [
                {"name": "orderTotal", "type": "Money", "value": "19.99"},
                {"name": "orderedAt", "type": "DateTime", "value": "2026-11-26T09:00:00Z"},
                {"name": "day", "type": "Date", "value": "2026-11-26"},
                {"name": "paid", "type": "Boolean", "value": "true"},
                {"name": "url", "type": "URL", "value": "https://shop.example.com/p/1"},
                {"name": "qty", "type": "Number", "value": "3"},
                {"name": "channel", "type": "String", "value": "web"},
            ],
        },
        {
            "customEventId": 4242,
            "customerCrmId": "CRM-2",
            "dataFields": [
                {"name": "orderTotal", "type": "Money", "value": "5.00"},
                {"name": "channel", "type": "String", "value": "web"},
            ],
        },
    ]
    assert {r["path"] for r in received} == {"/scenariocustomevents"}
    report = read_report(tmp_path / "report.csv")
    assert [(r["row_number"], r["status"]) for r in report] == [
        ("1", "sent"),
        ("2", "sent"),
        ("3", "invalid"),
        ("4", "invalid"),
        ("5", "invalid"),
    ]
    assert report[0]["customer_ref"] == "00123" and report[0]["http_status"] == "201" and report[0]["attempts"] == "1"
    assert report[2]["customer_ref"] == "18" and "customer.email_md5" in report[2]["detail"]
    assert "'12,3,4' is not a number" in report[3]["detail"]
    assert "javascript:alert(1)" in report[4]["detail"] and report[4]["attempts"] == "0"
    assert "anna@example.com" not in (tmp_path / "report.csv").read_text().lower()
    assert re.search(r"^  sent +2$", result.stdout, re.M) and re.search(r"^  invalid +3$", result.stdout, re.M)


def test_faults_still_deliver_every_row_exactly_once(tmp_path: Path, mock_factory: Any) -> None:
    # ~46% of attempts fail; 30 attempts make a row's exhaustion a 1e-10 event, not a flake.
    mock = mock_factory("--fail-429", "0.2", "--retry-after", "0", "--fail-5xx", "0.2", "--drop", "0.15", "--seed", "7")
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 150)
    result = run_cli(
        *run_args(
            mock,
            tmp_path,
            "in.csv",
            extra=(
                "--max-attempts",
                "30",
                "--backoff-base",
                "0.01",
                "--backoff-max",
                "0.05",
                "--concurrency",
                "6",
                "--summary-json",
                "s.json",
            ),
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    crm_ids = Counter(r["body"]["customerCrmId"] for r in mock.received())
    assert crm_ids == Counter({f"C{i}": 1 for i in range(1, 151)})
    stats = mock.stats()
    assert stats["by_status"].get("429", 0) > 0 and stats["requests"] > 150
    report = read_report(tmp_path / "report.csv")
    assert {r["status"] for r in report} == {"sent"} and len(report) == 150
    assert sum(int(r["attempts"]) for r in report) > 150
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["exit_code"] == 0 and summary["counts"] == {"sent": 150} and summary["retries"] > 0


def test_in_flight_requests_never_exceed_concurrency(tmp_path: Path, mock_factory: Any) -> None:
    mock = mock_factory("--latency-ms", "40")
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 60)
    result = run_cli(*run_args(mock, tmp_path, "in.csv", extra=("--concurrency", "3")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert mock.stats()["max_in_flight"] == 3


def test_rejections_and_the_errors_file_is_a_valid_input(tmp_path: Path, mock_factory: Any) -> None:
    mock = mock_factory("--events", "77")
    (tmp_path / "m.yaml").write_text(
        CUSTOMER_MAPPING.replace("custom_event_id: 77", "custom_event_id: {column: event}")
    )
    write_csv(
        tmp_path / "in.csv",
        ["crm_id", "email", "total", "event"],
        [
            ["C1", "a@example.com", "1", "77"],
            ["C2", "b@example.com", "2", "78"],
            ["C3", "nope", "3", "77"],
            ["C4", "", "x", "77"],
        ],
    )
    result = run_cli(*run_args(mock, tmp_path, "in.csv", extra=("--errors", "errors.csv")), cwd=tmp_path)
    assert result.returncode == 1
    report = read_report(tmp_path / "report.csv")
    assert [r["status"] for r in report] == ["sent", "rejected", "invalid", "invalid"]
    assert report[1]["http_status"] == "404" and "custom event 78 does not exist" in report[1]["detail"]
    errors = read_report(tmp_path / "errors.csv")
    assert [(e["crm_id"], e["_status"]) for e in errors] == [("C2", "rejected"), ("C3", "invalid"), ("C4", "invalid")]
    assert list(errors[0]) == ["crm_id", "email", "total", "event", "_status", "_error", "_row"]
    check = run_cli("validate", "errors.csv", "--mapping", "m.yaml", "--report", "v.csv", cwd=tmp_path)
    assert check.returncode == 1, check.stderr
    assert [r["status"] for r in read_report(tmp_path / "v.csv")] == ["valid", "invalid", "invalid"]


def test_refused_key_aborts_with_exit_3(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 30)
    wrong = "wrong-key-0c1d2e"
    result = run_cli(
        *run_args(mock, tmp_path, "in.csv", extra=("--concurrency", "1")), cwd=tmp_path, env=cli_env(ECDP_API_KEY=wrong)
    )
    assert result.returncode == 3
    assert "the API refused the key" in result.stderr
    report = read_report(tmp_path / "report.csv")
    assert report[0]["status"] == "failed" and report[0]["http_status"] == "401"
    assert {r["status"] for r in report[1:]} == {"not_attempted"} and len(report) == 30
    assert mock.stats()["requests"] == 1
    assert wrong not in result.stdout + result.stderr + (tmp_path / "report.csv").read_text()
    # A rerun with the right key sends every row.
    again = run_cli(*run_args(mock, tmp_path, "in.csv"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(mock.received()) == 30


def test_canary_key_never_reaches_output_or_files(tmp_path: Path, mock_factory: Any) -> None:
    mock = mock_factory("--events", "77", "--fail-5xx", "0.5", "--drop", "0.2", "--seed", "3")
    (tmp_path / "m.yaml").write_text(
        CUSTOMER_MAPPING.replace("custom_event_id: 77", "custom_event_id: {column: event}")
    )
    rows = [[f"C{i}", f"u{i}@example.com" if i % 5 else "bad", "1", "77" if i % 3 else "99"] for i in range(1, 41)]
    write_csv(tmp_path / "in.csv", ["crm_id", "email", "total", "event"], rows)
    outputs = []
    for _ in range(2):
        r = run_cli(
            *run_args(
                mock,
                tmp_path,
                "in.csv",
                extra=(
                    "--errors",
                    "e.csv",
                    "--summary-json",
                    "s.json",
                    "--max-attempts",
                    "2",
                    "--backoff-base",
                    "0.01",
                    "--retry-rejected",
                ),
            ),
            cwd=tmp_path,
        )
        outputs.append(r.stdout + r.stderr)
    bad_url = run_cli("run", "in.csv", "--mapping", "m.yaml", "--base-url", "http://10.1.2.3", cwd=tmp_path)
    outputs.append(bad_url.stdout + bad_url.stderr)
    flag = run_cli("run", "in.csv", "--mapping", "m.yaml", f"--api-key={KEY}", cwd=tmp_path)
    assert flag.returncode == 2 and "never taken as a flag value" in flag.stderr
    outputs.append(flag.stdout + flag.stderr)
    for text in outputs:
        assert KEY not in text
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "received.jsonl":
            assert KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_report_formats(tmp_path: Path, mock: Mock, suffix: str) -> None:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 4, bad=(2,))
    report = tmp_path / f"out{suffix}"
    result = run_cli(*run_args(mock, tmp_path, "in.csv", extra=("--report", str(report))), cwd=tmp_path)
    assert result.returncode == 1
    if suffix == ".jsonl":
        lines = [json.loads(line) for line in report.read_text().splitlines()]
    else:
        lines = pq.read_table(report).to_pylist()
    assert [(line["row_number"], line["status"]) for line in lines] == [
        (1, "sent"),
        (2, "invalid"),
        (3, "sent"),
        (4, "sent"),
    ]
    assert lines[0]["http_status"] == 201 and lines[1]["http_status"] is None
    assert set(lines[0]) == {
        "source_file",
        "row_number",
        "status",
        "http_status",
        "substatus",
        "detail",
        "attempts",
        "customer_ref",
    }


def test_parquet_input_sends_exact_types(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text(
        "custom_event_id: 5\ncustomer: {crm_id: crm, id: cid}\n"
        "data_fields:\n  - {name: amount, type: Money, column: amount}\n  - {name: at, type: DateTime, column: at}\n"
    )
    table = pa.table(
        {
            "crm": pa.array([900123, None], pa.int64()),
            "cid": pa.array([None, 7], pa.int64()),
            "amount": pa.array([Decimal("10.005"), None], pa.decimal128(10, 3)),
            "at": pa.array([None, 1_700_000_000_000_000], pa.timestamp("us", tz="Europe/Warsaw")),
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    result = run_cli(*run_args(mock, tmp_path, "in.parquet"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    bodies = sorted((r["body"] for r in mock.received()), key=lambda b: "customerId" in b)  # any order
    assert bodies == [
        {
            "customEventId": 5,
            "customerCrmId": "900123",
            "dataFields": [{"name": "amount", "type": "Money", "value": "10.01"}],
        },
        {
            "customEventId": 5,
            "customerId": 7,
            "dataFields": [{"name": "at", "type": "DateTime", "value": "2023-11-14T22:13:20Z"}],
        },
    ]


def test_segments_endpoint(tmp_path: Path, mock_factory: Any) -> None:
    mock = mock_factory("--segments", "1,5,15")
    (tmp_path / "m.yaml").write_text("endpoint: segments\ncustom_event_id: 17\nsegments: {column: segs}\n")
    write_csv(tmp_path / "in.csv", ["segs"], [["1,5|15"], ["2"], [""]])
    result = run_cli(*run_args(mock, tmp_path, "in.csv"), cwd=tmp_path)
    assert result.returncode == 1
    assert [r["body"] for r in mock.received()] == [{"customEventId": 17, "segments": [1, 5, 15]}]
    assert mock.received()[0]["path"] == "/scenariocustomevents/withsegments"
    assert [r["status"] for r in read_report(tmp_path / "report.csv")] == ["sent", "rejected", "invalid"]


def test_filtered_rows_are_skipped_never_sent_and_exit_0(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING + "filter:\n  - {column: status, equals: paid}\n")
    write_csv(
        tmp_path / "in.csv",
        ["crm_id", "email", "total", "status"],
        [
            ["C1", "a@example.com", "1", "paid"],
            ["C2", "b@example.com", "2", "cancelled"],
            ["C3", "c@example.com", "3", "paid"],
        ],
    )
    result = run_cli(*run_args(mock, tmp_path, "in.csv", extra=("--errors", "e.csv")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(r["body"]["customerCrmId"] for r in mock.received()) == ["C1", "C3"]
    report = read_report(tmp_path / "report.csv")
    assert [r["status"] for r in report] == ["sent", "skipped", "sent"]
    assert report[1]["detail"] == "filter: status equals paid is not true"
    assert read_report(tmp_path / "e.csv") == []
    assert re.search(r"^  skipped +1$", result.stdout, re.M)
    again = run_cli(*run_args(mock, tmp_path, "in.csv"), cwd=tmp_path)
    assert again.returncode == 0 and len(mock.received()) == 2


def test_validate_preview_groups_problems_with_examples(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "custom_event_id: 1\ncustomer: {email: email}\n"
        "data_fields:\n  - {name: orderedAt, type: DateTime, column: at, format: '%Y-%m-%d %H:%M:%S', required: true}\n"
    )
    rows = [[f"user{i}@example.com", "2026-11-26 10:00:00"] for i in range(1, 21)]
    rows[16][1] = "31/02/2024 25:61"
    rows[18][1] = "yesterday"
    rows[19][1] = ""
    rows[4][0] = "broken-address"
    write_csv(tmp_path / "in.csv", ["email", "at"], rows)
    result = run_cli("validate", "in.csv", "--mapping", "m.yaml", "--show", "1", cwd=tmp_path)
    assert result.returncode == 1
    assert "would send 16 rows" in result.stdout
    assert (
        "column 'at' (orderedAt): 2 rows: does not match format %Y-%m-%d %H:%M:%S — row 17 '31/02/2024 25:61', row 19 'yesterday'"
        in result.stdout
    )
    assert "column 'at' (orderedAt): 1 row: empty but required — row 20" in result.stdout
    assert (
        "column 'email' (customer.email): 1 row: not a valid email address (needs exactly one '@') — row 5"
        in result.stdout
    )
    assert "broken-address" not in result.stdout and "user1@example.com" not in result.stdout
    assert '"customerEmail":"u***@example.com"' in result.stdout
