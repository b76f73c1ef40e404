"""Hostile inputs through the CLI: broken files are refused before anything is sent, one
bad value makes one row invalid, a mapping means what the user wrote (issue 8)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from importer.cli import main
from importer.errors import InputError
from tests.conftest import CUSTOMER_MAPPING, KEY, Mock, cli_env, customers_csv, read_report, run_cli, write_csv

STRING_MAPPING = """\
endpoint: customer
custom_event_id: 7
customer: {crm_id: crm}
data_fields:
  - {name: note, type: String, column: note}
"""


def run_args(mock: Mock, inp: str = "in.csv", *extra: str) -> list[str]:
    return ["run", inp, "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state", *extra]


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """The real CLI entry point in this process (fast enough for tables of cases)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(STRING_MAPPING)
    return tmp_path


def csv_rows(n: int, start: int = 1) -> str:
    return "".join(f"C{i},n{i}\n" for i in range(start, start + n))


# --- 1-3: broken structure is refused before anything is sent -------------------------------


def broken_files(tmp: Path) -> dict[str, Path]:
    body = ("crm,note\n" + csv_rows(3000)).encode()
    packed = gzip.compress(body)
    crc = bytearray(packed)
    crc[-6] ^= 0xFF
    files = {
        "unclosed quote": ('crm,note\nC1,a\nC2,"5 inch screen\n' + csv_rows(9998, 3)).encode(),
        "truncated gzip": packed[: len(packed) // 2],
        "gzip crc": bytes(crc),
        "gzip trailing garbage": packed + b"garbage!",
        "field over the limit": ("crm,note\nC1,a\nC2," + "x" * 200_000 + "\n" + csv_rows(10, 3)).encode(),
    }
    out = {}
    for name, data in files.items():
        path = tmp / (name.replace(" ", "_") + (".csv.gz" if "gzip" in name else ".csv"))
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.mark.parametrize(
    "kind, message",
    [
        ("unclosed quote", "line 3: a quoted field opened in the record starting here is never closed"),
        ("truncated gzip", "damaged gzip file (Compressed file ended before the end-of-stream marker was reached)"),
        ("gzip crc", "damaged gzip file (CRC check failed"),
        ("gzip trailing garbage", "damaged gzip file (Not a gzipped file"),
        ("field over the limit", "line 3: broken CSV record (field larger than field limit"),
    ],
)
def test_broken_structure_is_refused_by_run_and_validate(workdir: Path, mock: Mock, kind: str, message: str) -> None:
    path = broken_files(workdir)[kind]
    val = run_cli("validate", path.name, "--mapping", "m.yaml", cwd=workdir)
    assert val.returncode == 2 and message in val.stderr, val.stderr
    assert "Traceback" not in val.stderr
    res = run_cli(*run_args(mock, path.name), cwd=workdir)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert mock.stats()["requests"] == 0
    assert not (workdir / (path.name.split(".")[0] + ".report.csv")).exists()


@pytest.mark.parametrize("kind", ["unclosed quote", "field over the limit"])
def test_a_broken_file_gone_before_its_line_is_found_is_still_one_input_error(
    workdir: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line of a broken record is found by reading the file again; if that read
    fails (the file deleted or replaced meanwhile), the file is still refused as broken,
    never an internal error."""
    from importer import source

    path = broken_files(workdir)[kind]
    opened = source.CsvSource._open_bytes
    calls = {"n": 0}

    def once(self: source.CsvSource) -> Any:
        calls["n"] += 1
        if calls["n"] > 2:  # the sample, then the reading; the third is the search for the line
            raise FileNotFoundError(2, "No such file or directory")
        return opened(self)

    monkeypatch.setattr(source.CsvSource, "_open_bytes", once)
    with pytest.raises(InputError, match="a record whose line could not be found"):
        list(source.open_source(str(path)).rows())


def test_corrupt_parquet_pages_are_refused_before_sending(workdir: Path, mock: Mock) -> None:
    table = pa.table({"crm": [f"C{i}" for i in range(50_000)], "note": [f"note {i} " * 3 for i in range(50_000)]})
    pq.write_table(table, workdir / "in.parquet", compression="NONE", row_group_size=10_000)
    data = bytearray((workdir / "in.parquet").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = b"\xff" * 4000  # pages of a middle row group, footer intact
    (workdir / "in.parquet").write_bytes(bytes(data))
    res = run_cli(*run_args(mock, "in.parquet"), cwd=workdir)
    assert res.returncode == 2, res.stderr
    assert "in.parquet: damaged Parquet file" in res.stderr and "Traceback" not in res.stderr
    assert mock.stats()["requests"] == 0


def test_cr_only_line_endings_are_line_ends(workdir: Path, mock: Mock) -> None:
    (workdir / "in.csv").write_bytes(("crm,note\n" + csv_rows(500)).replace("\n", "\r").encode())
    res = run_cli(*run_args(mock), cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert sorted(r["body"]["customerCrmId"] for r in mock.received()) == sorted(f"C{i}" for i in range(1, 501))


def test_a_file_growing_while_it_is_imported_stops_and_nothing_appended_is_sent(
    workdir: Path, mock_factory: Any
) -> None:
    mock = mock_factory("--latency-ms", "20")
    (workdir / "in.csv").write_text("crm,note\n" + csv_rows(400))
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", *run_args(mock, "in.csv", "--concurrency", "4", "--report", "r.csv")],
        cwd=workdir,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while mock.stats()["requests"] < 20:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with (workdir / "in.csv").open("a") as fh:
        fh.write(csv_rows(100, 401))  # the copy is still going on
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "input changed while reading: is it still being written?" in err
    sent = {r["body"]["customerCrmId"] for r in mock.received()}
    assert sent and all(int(ref[1:]) <= 400 for ref in sent)
    assert len(read_report(workdir / "r.csv")) == 400  # the identified rows, each with its fate


def test_min_age_refuses_a_file_modified_too_recently(workdir: Path, mock: Mock) -> None:
    (workdir / "in.csv").write_text("crm,note\n" + csv_rows(5))
    res = run_cli(*run_args(mock, "in.csv", "--min-age", "3600"), cwd=workdir)
    assert res.returncode == 2 and "less than --min-age 3600" in res.stderr
    assert mock.stats()["requests"] == 0
    old = time.time() - 120
    os.utime(workdir / "in.csv", (old, old))  # the copy finished two minutes ago
    assert run_cli(*run_args(mock, "in.csv", "--min-age", "60"), cwd=workdir).returncode == 0
    assert mock.stats()["requests"] == 5


# --- 4-7: one value never stops a run --------------------------------------------------------

VALUES_MAPPING = """\
endpoint: customer
custom_event_id: 7
timezone: America/New_York
customer: {crm_id: crm}
data_fields:
  - {name: at, type: DateTime, column: at}
  - {name: n, type: Number, column: n}
  - {name: m, type: Money, column: m}
"""


def test_values_past_their_range_make_their_row_invalid_and_the_run_goes_on(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text(VALUES_MAPPING)
    rows = [
        ["C1", "9999-12-31T23:59:59-05:00", "1", "1"],
        ["C2", "9999-12-31 23:59:59", "1", "1"],
        ["C3", "0999-01-01 12:00:00", "1", "1"],
        ["C4", "2024-03-10 02:30:00", "1", "1"],  # the DST gap in New York
        ["C5", "2024-11-03 01:30:00", "1", "1"],  # passed twice in New York
        ["C6", "2024-01-01 00:00:00", "1e5000", "1"],
        ["C7", "2024-01-01 00:00:00", "1e1000000", "1"],
        ["C8", "2024-01-01 00:00:00", "9" * 5000, "1"],
        ["C9", "2024-01-01 00:00:00", "1", "-0.001"],
        ["C10", "2024-01-01 00:00:00", "-0", "1e2000000"],
    ]
    write_csv(tmp_path / "in.csv", ["crm", "at", "n", "m"], rows)
    # A timeout, not a timing: `1e1000000` once cost minutes of CPU for one cell.
    res = run_cli(*run_args(mock, "in.csv", "--report", "r.csv"), cwd=tmp_path, timeout=60)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    report = {r["customer_ref"]: r for r in read_report(tmp_path / "r.csv")}
    for ref in ("C1", "C2", "C3"):
        assert report[ref]["status"] == "invalid" and "out of range" in report[ref]["detail"]
    assert "does not exist in America/New_York" in report["C4"]["detail"]
    assert "is ambiguous in America/New_York" in report["C5"]["detail"]
    for ref in ("C6", "C7", "C10"):
        assert report[ref]["status"] == "invalid" and "out of range" in report[ref]["detail"]
    assert "is not a number of at most 400 characters" in report["C8"]["detail"]
    assert report["C9"]["status"] == "sent"
    fields = {r["body"]["customerCrmId"]: r["body"]["dataFields"] for r in mock.received()}
    assert {"name": "m", "type": "Money", "value": "0.00"} in fields["C9"]


def test_unicode_digits_are_no_event_id(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text("endpoint: customer\ncustom_event_id: {column: ev}\ncustomer: {crm_id: crm}\n")
    write_csv(tmp_path / "in.csv", ["crm", "ev"], [["C1", "²"], ["C2", "①"], ["C3", "12"], ["C4", "9" * 400]])
    res = run_cli(*run_args(mock, "in.csv", "--report", "r.csv"), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert [r["status"] for r in read_report(tmp_path / "r.csv")] == ["invalid", "invalid", "sent", "invalid"]


def test_parquet_values_are_sent_as_the_file_holds_them(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text(
        """\
endpoint: customer
custom_event_id: 7
customer: {id: cid, email: mail}
data_fields:
  - {name: ratio, type: Number, column: ratio}
  - {name: tag, type: String, column: tag}
  - {name: at, type: DateTime, column: at}
"""
    )
    table = pa.table(
        {
            "cid": pa.array([1.0, float("nan"), float("inf"), 4.0, 5.0, 6.0], pa.float64()),
            "mail": pa.array([b"A@x.com", b"b@x.com", b"c@x.com", b"\xff\xfe@x.com", b"e@x.com", b"f@x.com"]),
            "ratio": pa.array([0.1, 0.016666668, 1.5, 2.0, 3.0, 4.0], pa.float32()),
            "tag": pa.array([b"caf\xc3\xa9", b"t", b"t", b"t", b"\xff", b"t"], pa.binary()),
            "at": pa.array([0, 0, 0, 0, 0, 253402300800 * 10**6], pa.timestamp("us", "UTC")),
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    res = run_cli(*run_args(mock, "in.parquet", "--report", "r.csv", "--errors", "e.csv"), cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    statuses = [r["status"] for r in read_report(tmp_path / "r.csv")]
    assert statuses == ["sent", "invalid", "invalid", "invalid", "invalid", "invalid"]
    (body,) = [r["body"] for r in mock.received()]
    assert body["customerEmail"] == "a@x.com" and body["customerId"] == 1
    assert {"name": "ratio", "type": "Number", "value": "0.1"} in body["dataFields"]
    assert {"name": "tag", "type": "String", "value": "café"} in body["dataFields"]
    errors = (tmp_path / "e.csv").read_text()
    assert "10000-01-01 00:00:00" in errors  # the out-of-range timestamp as the file holds it


def test_a_parquet_list_column_goes_to_errors_as_the_mapping_reads_it(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text("endpoint: segments\ncustom_event_id: {column: ev}\nsegments: {column: segs}\n")
    pq.write_table(
        pa.table({"ev": ["7", "x"], "segs": pa.array([[1, 99], [1, 99]], pa.list_(pa.int64()))}),
        tmp_path / "in.parquet",
    )
    res = run_cli(*run_args(mock, "in.parquet", "--errors", "e.csv"), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert read_report(tmp_path / "e.csv")[0]["segs"] == "1,99"


@pytest.mark.parametrize(
    "encoding, message",
    [
        ("base64", "--encoding 'base64' is not a text encoding"),
        ("rot13", "--encoding 'rot13' is not a text encoding"),
        ("zlib", "--encoding 'zlib' is not a text encoding"),
        ("hex", "--encoding 'hex' is not a text encoding"),
        ("utf-16", "utf-16 text must start with a byte-order mark"),
        ("no-such", "unknown encoding: 'no-such'"),
    ],
)
def test_only_text_encodings(workdir: Path, capsys: Any, encoding: str, message: str) -> None:
    (workdir / "in.csv").write_text("crm,note\nC1,a\n")
    code, _, err = cli(
        capsys, "validate", str(workdir / "in.csv"), "--mapping", str(workdir / "m.yaml"), "--encoding", encoding
    )
    assert code == 2 and message in err, err


# --- 9-11: a mapping means what the user wrote -----------------------------------------------

YAML_BASE = "endpoint: customer\ncustom_event_id: 7\ncustomer: {crm_id: crm}\n"


def test_yaml_scalars_are_the_text_as_written(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text(
        YAML_BASE
        + """\
filter:
  - {column: country, in: [NO, SE, DK]}
data_fields:
  - {name: consent, type: Boolean, column: consent, true_values: [yes, on], false_values: [no, off]}
  - {name: answer, type: String, value: no}
  - {name: code, type: String, value: 0123}
  - {name: version, type: String, value: 1.10}
  - {name: word, type: String, value: "null"}
"""
    )
    write_csv(
        tmp_path / "in.csv",
        ["crm", "country", "consent"],
        [["C1", "NO", "yes"], ["C2", "SE", "off"], ["C3", "PL", "on"]],
    )
    res = run_cli(*run_args(mock, "in.csv", "--report", "r.csv"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [r["status"] for r in read_report(tmp_path / "r.csv")] == ["sent", "sent", "skipped"]
    bodies = {r["body"]["customerCrmId"]: r["body"]["dataFields"] for r in mock.received()}
    assert bodies["C1"] == [
        {"name": "consent", "type": "Boolean", "value": "true"},
        {"name": "answer", "type": "String", "value": "no"},
        {"name": "code", "type": "String", "value": "0123"},
        {"name": "version", "type": "String", "value": "1.10"},
        {"name": "word", "type": "String", "value": "null"},
    ]
    assert bodies["C2"][0]["value"] == "false"


BAD_MAPPINGS = [
    ("value: null", YAML_BASE + "data_fields: [{name: a, type: String, value: null}]", "value: is empty (null)"),
    ("value: list", YAML_BASE + "data_fields: [{name: a, type: String, value: [1, 2]}]", "must be one value"),
    ("duplicate key", YAML_BASE + "custom_event_id: 8\n", "duplicate key 'custom_event_id'"),
    (
        "endpoint list",
        "endpoint: [customer]\ncustom_event_id: 7\ncustomer: {crm_id: crm}\n",
        "endpoint: must be customer or segments",
    ),
    (
        "unicode event id",
        'custom_event_id: "²"\ncustomer: {crm_id: crm}\n',
        "custom_event_id: must be a positive 32-bit integer",
    ),
    ("zone is a directory", YAML_BASE + "timezone: Europe\n", "unknown time zone 'Europe'"),
    ("long zone", YAML_BASE + f"timezone: {'A' * 300}\n", "unknown time zone 'AAAA"),
    (
        "decimal 5",
        YAML_BASE + "data_fields: [{name: a, type: Money, column: crm, decimal: 5}]",
        "decimal: must be '.' or ','",
    ),
    ("filter format 5", YAML_BASE + "filter: [{column: crm, after: 2024-01-01, format: 5}]", "'5' is not a format"),
    ("filter format [5]", YAML_BASE + "filter: [{column: crm, after: 2024-01-01, format: [5]}]", "'5' is not a format"),
    (
        "constant out of range",
        YAML_BASE + "data_fields: [{name: a, type: DateTime, value: '9999-12-31T23:59:59-05:00'}]",
        "out of range",
    ),
    ("constant number", YAML_BASE + "data_fields: [{name: a, type: Number, value: 1e5000}]", "out of range"),
    ("deep nesting", YAML_BASE + "x: " + "[" * 5000 + "]" * 5000, "nested"),
    ("%Q", YAML_BASE + "data_fields: [{name: a, type: Date, column: crm, format: '%Q'}]", "'Q' is a bad directive"),
    ("stray %", YAML_BASE + "data_fields: [{name: a, type: Date, column: crm, format: '%d.%m.%'}]", "stray %"),
    ("epoch_xs", YAML_BASE + "data_fields: [{name: a, type: Date, column: crm, format: epoch_xs}]", "no % directive"),
    (
        "region 48",
        "custom_event_id: 7\ncustomer: {phone: {column: crm, default_region: '48'}}\n",
        "default_region: must be a two-letter region code",
    ),
    (
        "required yes",
        "custom_event_id: 7\ncustomer: {crm_id: {column: crm, required: yes}}\n",
        "must be true or false, got 'yes'",
    ),
    ("unhashable key", YAML_BASE + "? [a]\n: b\n", "a key must be a plain word"),
]


@pytest.mark.parametrize("name, text, message", BAD_MAPPINGS, ids=[b[0] for b in BAD_MAPPINGS])
def test_each_bad_mapping_is_a_one_line_exit_2(workdir: Path, capsys: Any, name: str, text: str, message: str) -> None:
    (workdir / "m.yaml").write_text(text)
    (workdir / "in.csv").write_text("crm,note\nC1,a\n")
    code, _, err = cli(capsys, "validate", str(workdir / "in.csv"), "--mapping", str(workdir / "m.yaml"))
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_alias_bomb_is_refused_with_a_short_message(workdir: Path, capsys: Any) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 9)
    ]
    (workdir / "m.yaml").write_text("\n".join(lines) + "\n" + YAML_BASE + "data_fields: *a8\n")
    (workdir / "in.csv").write_text("crm,note\nC1,a\n")
    code, _, err = cli(capsys, "validate", str(workdir / "in.csv"), "--mapping", str(workdir / "m.yaml"))
    assert code == 2 and "too large once its aliases are expanded" in err
    assert len(err) < 300


def test_echoed_values_are_capped(workdir: Path, capsys: Any) -> None:
    long = "y" * 5000
    (workdir / "m.yaml").write_text(
        f"endpoint: {long}\ncustom_event_id: 7\ntimezone: {long}\ncustomer: {{crm_id: crm}}\n"
        f"data_fields: [{{name: a, type: {long}, column: crm}}]\n"
    )
    (workdir / "in.csv").write_text("crm,note\nC1,a\n")
    code, _, err = cli(capsys, "validate", str(workdir / "in.csv"), "--mapping", str(workdir / "m.yaml"))
    assert code == 2
    for where in ("endpoint: unknown endpoint", "timezone: unknown time zone", "data_fields[0].type: unknown type"):
        assert f"{where} 'yyyy" in err, err  # each problem is there, its value cut short
    assert err.count("...'") == 0 and err.count("yyy...") == 3 and len(err) < 1000, err


# --- 12-14: outputs, key echo, pipes ---------------------------------------------------------


def test_report_that_is_the_input_is_refused_and_the_input_kept(workdir: Path, mock: Mock) -> None:
    customers_csv(workdir / "orders.csv", 5)
    (workdir / "m.yaml").write_text(CUSTOMER_MAPPING)
    before = (workdir / "orders.csv").read_bytes()
    res = run_cli(*run_args(mock, "orders.csv", "--report", "orders.csv"), cwd=workdir)
    assert res.returncode == 2 and "--report orders.csv is also the input orders.csv" in res.stderr
    res = run_cli(*run_args(mock, "orders.csv", "--errors", "./orders.csv"), cwd=workdir)
    assert res.returncode == 2 and "is also the input" in res.stderr
    assert (workdir / "orders.csv").read_bytes() == before
    assert mock.stats()["requests"] == 0


@pytest.mark.parametrize("flag", ["--report", "--errors", "--summary-json"])
def test_unwritable_outputs_are_refused_before_sending(workdir: Path, mock: Mock, flag: str) -> None:
    customers_csv(workdir / "in.csv", 5)
    (workdir / "m.yaml").write_text(CUSTOMER_MAPPING)
    (workdir / "a_file").write_text("x")
    (workdir / "a_dir.csv").mkdir()
    for target in ("a_file/out.csv", "a_dir.csv", "/proc/out.csv"):
        res = run_cli(*run_args(mock, "in.csv", flag, target), cwd=workdir)
        assert res.returncode == 2 and flag in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert mock.stats()["requests"] == 0


def test_the_default_report_is_not_taken_as_next_nights_input(workdir: Path, mock: Mock) -> None:
    (workdir / "m.yaml").write_text(CUSTOMER_MAPPING)
    drops = workdir / "drops"
    drops.mkdir()
    customers_csv(drops / "events.csv", 5)
    assert run_cli(*run_args(mock, "drops/events.csv"), cwd=workdir).returncode == 0
    assert (drops / "events.report.csv").exists()
    inputs = sorted(str(p.relative_to(workdir)) for p in drops.glob("*.csv"))
    res = run_cli("run", *inputs, *run_args(mock)[2:], cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert "skipping drops/events.report.csv: it is a report written by ecdp-import" in res.stderr
    assert mock.stats()["requests"] == 5


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-k=SECRETVALUE123"],
        ["--api-ke", "SECRETVALUE123"],
        ["--api-key-file", "SECRETVALUE123"],
        ["--apikey", "SECRETVALUE123"],
        ["--api-key=SECRETVALUE123"],
    ],
)
def test_a_value_given_to_a_key_option_is_never_echoed(workdir: Path, mock: Mock, argv: list[str]) -> None:
    (workdir / "in.csv").write_text("crm,note\nC1,a\n")
    res = run_cli(*run_args(mock), *argv, cwd=workdir, env=cli_env(ECDP_API_KEY=KEY))
    assert res.returncode == 2, res.stderr
    assert "SECRETVALUE123" not in res.stderr + res.stdout and KEY not in res.stderr + res.stdout


def test_validate_show_into_a_closed_pipe_ends_quietly(workdir: Path) -> None:
    (workdir / "in.csv").write_text("crm,note\n" + csv_rows(3000))
    cmd = f"{sys.executable} -m importer validate in.csv --mapping m.yaml --show 2000 | head -1"
    res = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], cwd=workdir, capture_output=True, text=True, env=cli_env()
    )
    assert res.stdout.count("\n") == 1
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
    assert res.returncode == 0


# --- 15: emails ------------------------------------------------------------------------------


def test_emails_that_are_no_addresses_are_invalid(tmp_path: Path, mock: Mock) -> None:
    (tmp_path / "m.yaml").write_text("custom_event_id: 7\ncustomer: {email: mail}\n")
    emails = ["mailto:a@b.com", "a@b..com", "a\x01b@c.com", "a@b.com.", "Ann.Lee+x@Example.co.uk"]
    write_csv(tmp_path / "in.csv", ["mail"], [[e] for e in emails])
    res = run_cli(*run_args(mock, "in.csv", "--report", "r.csv"), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert [r["status"] for r in read_report(tmp_path / "r.csv")] == ["invalid"] * 4 + ["sent"]
    assert [r["body"]["customerEmail"] for r in mock.received()] == ["ann.lee+x@example.co.uk"]
