"""Fuzzing the CLI with broken files and malformed mappings (bounded, derandomized on CI).

Each example runs the real ``main()`` (argument parsing included) in this process, against
the real mock server: no traceback, exit codes only from the contract, and nothing sent
for a bad mapping or a structurally broken file.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.cli import main
from tests.conftest import KEY, Mock

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
CONTRACT_CODES = {0, 1, 2}
MAPPING = """\
endpoint: customer
custom_event_id: 7
timezone: Europe/Warsaw
customer: {crm_id: crm, email: mail}
data_fields:
  - {name: at, type: DateTime, column: at}
  - {name: total, type: Money, column: total}
"""
GOOD_CSV = "crm,mail,at,total\n" + "".join(
    f'C{i},u{i}@x.com,2024-0{i % 9 + 1}-1{i % 9} 1{i % 9}:00:00,"{i},5"\n' for i in range(1, 40)
)


def invoke(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def check_both(mock: Mock, data: bytes, mapping: str, name: str = "in.csv") -> tuple[int, int]:
    """validate and run one input; returns their exit codes, asserting the contract."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / name).write_bytes(data)
        (work / "m.yaml").write_text(mapping)
        common = [str(work / name), "--mapping", str(work / "m.yaml"), "--report", str(work / "r.csv")]
        v_code, v_err = invoke("validate", *common)
        assert v_code in CONTRACT_CODES, v_err
        before = mock.stats()["requests"]
        r_code, r_err = invoke(
            "run",
            *common,
            "--base-url",
            mock.url,
            "--state-dir",
            str(work / "s"),
            "--no-progress",
            "--max-attempts",
            "1",
        )
        assert r_code in CONTRACT_CODES, r_err
        if r_code == 2:
            assert mock.stats()["requests"] == before, r_err
        if v_code == 2:
            assert r_code == 2, (v_err, r_err)  # what validate refuses, run refuses before sending
        return v_code, r_code


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(mock: Mock, monkeypatch: Any, data: bytes) -> None:
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    check_both(mock, data, MAPPING)


@FUZZ
@given(cut=st.integers(0, len(GOOD_CSV)), insert=st.sampled_from(['"', '""', "\r", "\n", ",", "\x00", "\ufeff", "é"]))
def test_badly_quoted_and_ragged_csv(mock: Mock, monkeypatch: Any, cut: int, insert: str) -> None:
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    text = GOOD_CSV[:cut] + insert + GOOD_CSV[cut:]
    check_both(mock, text.encode(), MAPPING)


@FUZZ
@given(cut=st.floats(0.0, 1.0))
def test_truncated_gzip(mock: Mock, monkeypatch: Any, cut: float) -> None:
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    packed = gzip.compress(GOOD_CSV.encode())
    data = packed[: int(len(packed) * cut)]
    v_code, _ = check_both(mock, data, MAPPING, "in.csv.gz")
    if len(data) < len(packed):
        assert v_code == 2


@FUZZ
@given(cut=st.floats(0.0, 1.0), flip=st.integers(0, 10_000))
def test_truncated_or_damaged_parquet(mock: Mock, monkeypatch: Any, cut: float, flip: int) -> None:
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    sink = io.BytesIO()
    table = pa.table({"crm": [f"C{i}" for i in range(300)], "mail": [f"u{i}@x.com" for i in range(300)]})
    pq.write_table(table, sink, row_group_size=100)
    data = bytearray(sink.getvalue())
    if cut < 0.5:
        data = data[: int(len(data) * cut * 2)]
    else:
        data[flip % len(data)] ^= 0xFF
    check_both(mock, bytes(data), "custom_event_id: 7\ncustomer: {crm_id: crm, email: mail}\n", "in.parquet")


HOSTILE_SCALARS = [
    "NO", "0123", "1.10", "null", "~", "[1, 2]", "{a: b}", '"²"', "1e5000", '"%Q"', "yes", "-1", "2147483648",
    "Europe", "x" * 300, "*nothing", "&a x", "!!python/object:os.system x", '"\\x00"', "'%'", "epoch_ns", "[]", "{}",
]  # fmt: skip
MAPPING_SLOTS = [
    ("endpoint: customer", "endpoint: {}"),
    ("custom_event_id: 7", "custom_event_id: {}"),
    ("timezone: Europe/Warsaw", "timezone: {}"),
    ("crm_id: crm", "crm_id: {}"),
    ("type: DateTime", "type: {}"),
    ("column: at", "column: at, format: {}"),
    ("column: total}", "column: total, decimal: {}}}"),
    ("name: total", "name: {}"),
]


@FUZZ
@given(slot=st.sampled_from(MAPPING_SLOTS), value=st.sampled_from(HOSTILE_SCALARS))
def test_malformed_mappings(mock: Mock, monkeypatch: Any, slot: tuple[str, str], value: str) -> None:
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    mapping = MAPPING.replace(slot[0], slot[1].format(value), 1)
    check_both(mock, GOOD_CSV.encode(), mapping)  # asserts the contract for both commands


@FUZZ
@given(st.text(max_size=300))
def test_random_mapping_text(mock: Mock, monkeypatch: Any, text: str) -> None:
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    check_both(mock, GOOD_CSV.encode(), text)
