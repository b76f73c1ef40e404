"""The library API (issue 14) with in-memory data: pandas, polars, pyarrow Tables and
RecordBatchReaders, against the real mock server over loopback HTTP."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer import Progress, RunConfig, Secret, StateError, StopToken, run_import, validate
from importer.config import ValidateConfig
from importer.errors import ConfigError, InputError
from importer.memory import TableSource
from importer.pipeline import arun_import
from tests.conftest import KEY, Mock, read_report

MAPPING = """\
custom_event_id: 77
customer: {id: customer_id, email: email}
data_fields:
  - {name: total, type: Money, column: total}
  - {name: at, type: DateTime, column: at}
"""


@pytest.fixture
def mapping(tmp_path: Path) -> str:
    (tmp_path / "m.yaml").write_text(MAPPING)
    return str(tmp_path / "m.yaml")


def table(n: int, start: int = 1) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "email": pa.array([f"User{i}@Example.com" for i in ids]),
            "total": pa.array([Decimal(f"{i}.50") for i in ids], pa.decimal128(12, 2)),
            "at": pa.array([datetime(2026, 11, 26, 12, 0, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def config(tmp_path: Path, mock: Mock, mapping: str, data: Any, **extra: Any) -> RunConfig:
    return RunConfig(
        inputs=(data,),
        mapping=mapping,
        api_key=Secret(KEY),
        base_url=mock.url,
        state_dir=str(tmp_path / "state"),
        import_key=extra.pop("import_key", "orders-2026-11-26"),
        **extra,
    )


def test_a_pyarrow_table_is_sent_and_a_rerun_with_the_same_key_sends_nothing(
    tmp_path: Path, mock: Mock, mapping: str
) -> None:
    summary = run_import(config(tmp_path, mock, mapping, table(50)))
    assert summary.exit_code == 0 and summary.counts == {"sent": 50}
    assert summary.report == str(tmp_path / "state" / "reports" / "orders-2026-11-26.report.csv")
    assert len(read_report(Path(summary.report))) == 50
    again = run_import(config(tmp_path, mock, mapping, table(50)))
    assert again.exit_code == 0 and again.counts == {"sent": 50} and again.rows_this_run == 0
    assert len(mock.received()) == 50


def test_the_same_rows_as_a_stream_in_other_chunks_are_the_same_import(
    tmp_path: Path, mock: Mock, mapping: str
) -> None:
    data = table(20_000)
    run_import(config(tmp_path, mock, mapping, data))
    stream = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=777))
    again = run_import(config(tmp_path, mock, mapping, stream))
    assert again.rows_this_run == 0 and again.counts == {"sent": 20_000}
    assert len(mock.received()) == 20_000


def test_changed_content_under_the_same_key_is_refused_unless_new_import(
    tmp_path: Path, mock: Mock, mapping: str
) -> None:
    run_import(config(tmp_path, mock, mapping, table(10)))
    with pytest.raises(StateError, match="import key 'orders-2026-11-26' was used before for other content"):
        run_import(config(tmp_path, mock, mapping, table(12)))
    assert len(mock.received()) == 10
    summary = run_import(config(tmp_path, mock, mapping, table(12), new_import=True))
    # the ten events sent before are duplicates by the delivery ledger: only two go out
    assert summary.counts == {"sent": 2, "duplicate": 10}
    assert len(mock.received()) == 12


def test_a_pandas_dataframe_keeps_exact_types_and_nulls(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([9_007_199_254_740_993, None], dtype="Int64"),  # > 2**53: exact
            "email": ["a@example.com", "b@example.com"],
            "total": [Decimal("10.005"), None],
            "at": pd.to_datetime(["2026-11-26 13:00", None]).tz_localize("Europe/Warsaw"),
        }
    )
    summary = run_import(config(tmp_path, mock, mapping, frame))
    assert summary.exit_code == 0, summary
    bodies = {r["body"]["customerEmail"]: r["body"] for r in mock.received()}
    assert bodies["a@example.com"]["customerId"] == 9_007_199_254_740_993
    assert bodies["a@example.com"]["dataFields"] == [
        {"name": "total", "type": "Money", "value": "10.01"},
        {"name": "at", "type": "DateTime", "value": "2026-11-26T12:00:00Z"},
    ]
    assert "customerId" not in bodies["b@example.com"] and not bodies["b@example.com"].get("dataFields")


def test_a_polars_dataframe_through_the_arrow_c_stream(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"customer_id": [1, 2, 3], "email": ["a@x.com", "b@x.com", None], "total": ["1", "2", "x"]})
    frame = frame.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("at"))
    summary = run_import(config(tmp_path, mock, mapping, frame))
    assert summary.counts == {"sent": 2, "invalid": 1}
    assert sorted(r["body"]["customerId"] for r in mock.received()) == [1, 2]


def test_in_memory_data_needs_a_key_and_a_sane_one(tmp_path: Path, mock: Mock, mapping: str) -> None:
    with pytest.raises(ConfigError, match="needs an import_key"):
        run_import(config(tmp_path, mock, mapping, table(1), import_key=None))
    with pytest.raises(ConfigError, match="import_key must be"):
        run_import(config(tmp_path, mock, mapping, table(1), import_key="../etc/passwd"))
    with pytest.raises(ConfigError, match="neither a path nor tabular data"):
        run_import(config(tmp_path, mock, mapping, {"customer_id": [1]}))
    assert mock.received() == []


def test_a_frame_arrow_cannot_hold_is_one_clear_error(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pd = pytest.importorskip("pandas")
    mixed = pd.DataFrame({"customer_id": [1, "two"], "email": ["a@x.com", "b@x.com"], "total": [1, 2], "at": None})
    with pytest.raises(ConfigError, match="orders-2026-11-26: cannot convert the in-memory data to Arrow"):
        run_import(config(tmp_path, mock, mapping, mixed))
    empty = table(0)
    assert run_import(config(tmp_path, mock, mapping, empty, import_key="empty")).counts == {}
    assert mock.received() == []


def test_validate_takes_in_memory_data(tmp_path: Path, mapping: str) -> None:
    data = table(3).set_column(1, "email", pa.array(["a@x.com", "nope", "c@x.com"]))
    summary = validate(ValidateConfig(inputs=(data,), mapping=mapping, report=str(tmp_path / "v.csv"), import_key="k"))
    assert summary.exit_code == 1 and summary.counts == {"valid": 2, "invalid": 1}


def test_progress_reaches_a_callback(tmp_path: Path, mock: Mock, mapping: str) -> None:
    seen: list[dict[str, Any]] = []
    summary = run_import(config(tmp_path, mock, mapping, table(500)), progress=Progress.calling(seen.append, 0.01))
    assert summary.counts == {"sent": 500}
    assert seen[-1] == {"done": 500, "total": 500, "exact": True, "counts": {"sent": 500}}


def test_from_a_worker_thread(tmp_path: Path, mock: Mock, mapping: str) -> None:
    got: list[Any] = []
    worker = threading.Thread(target=lambda: got.append(run_import(config(tmp_path, mock, mapping, table(30)))))
    worker.start()
    worker.join(60)
    assert got and got[0].counts == {"sent": 30}


async def test_inside_a_running_loop(tmp_path: Path, mock: Mock, mapping: str) -> None:
    summary = await arun_import(config(tmp_path, mock, mapping, table(30)))
    assert summary.counts == {"sent": 30} and len(mock.received()) == 30


async def test_cancelling_the_task_drains_like_sigterm(tmp_path: Path, mock_factory: Any, mapping: str) -> None:
    slow = mock_factory("--latency-ms", "20")
    task = asyncio.ensure_future(arun_import(config(tmp_path, slow, mapping, table(3000))))
    while len(slow.received()) < 50:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    report = read_report(tmp_path / "state" / "reports" / "orders-2026-11-26.report.csv")
    statuses = Counter(r["status"] for r in report)
    assert statuses["unknown"] == 0 and 50 <= statuses["sent"] < 3000
    assert statuses["sent"] == len(slow.received())
    fast = mock_factory(name="rest.jsonl", replacing=slow)
    rest = await arun_import(config(tmp_path, fast, mapping, table(3000)))
    assert rest.counts == {"sent": 3000}
    ids = [r["body"]["customerId"] for r in slow.received() + fast.received()]
    assert sorted(ids) == list(range(1, 3001))  # each row once


def test_a_stop_token_from_another_thread(tmp_path: Path, mock_factory: Any, mapping: str) -> None:
    slow = mock_factory("--latency-ms", "20")
    token = StopToken()
    timer = threading.Timer(1.0, token.stop)
    timer.start()
    summary = run_import(config(tmp_path, slow, mapping, table(3000)), stop=token)
    assert summary.exit_code == 143 and summary.stop_reason == "caller"
    assert summary.counts.get("unknown", 0) == 0 and summary.counts.get("sent", 0) == len(slow.received())


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=1, max_size=300),
    cuts=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=10),
)
def test_content_identity_does_not_depend_on_chunking(values: list[str | None], cuts: list[int]) -> None:
    whole = pa.table({"v": pa.array(values, pa.string()), "n": pa.array(range(len(values)), pa.int64())})
    batches, start, i = [], 0, 0
    while start < len(values):
        size = cuts[i % len(cuts)]
        batches.append(whole.slice(start, size).combine_chunks().to_batches()[0])
        start, i = start + size, i + 1
    stream = pa.RecordBatchReader.from_batches(whole.schema, batches)
    as_table, as_stream = TableSource(whole, "k"), TableSource(stream, "k")
    assert as_table.scan() == as_stream.scan()
    assert [r.values for r in as_stream.rows()] == [r.values for r in as_table.rows()]
    changed = whole.set_column(1, "n", pa.array([n + (n == len(values) - 1) for n in range(len(values))], pa.int64()))
    assert TableSource(changed, "k").scan() != as_table.scan()


def test_the_airflow_example_task_with_a_dataframe(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pd = pytest.importorskip("pandas")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    try:
        example = importlib.import_module("airflow_dag")
    finally:
        sys.path.pop(0)
    frame = pd.DataFrame({"customer_id": [1, 2], "email": ["a@x.com", "b@x.com"], "total": ["1.50", "2"], "at": None})
    settings = {"mapping": mapping, "api_key": KEY, "base_url": mock.url, "state_dir": str(tmp_path / "s")}
    summary = example.import_orders(frame, "2026-11-26", **settings)
    assert summary["exit_code"] == 0 and summary["counts"] == {"sent": 2}
    assert example.import_orders(frame, "2026-11-26", **settings)["rows_this_run"] == 0  # a retried task
    bad = frame.assign(email=["a@x.com", "not-an-email"])
    with pytest.raises(example.ImportFailed) as failed:
        example.import_orders(bad, "2026-11-27", **settings)
    # the next day's frame repeats customer 1's event: the ledger keeps it from going out twice
    # an invalid row: exit 1, and a retry cannot fix it, so the task is not retried
    assert not failed.value.retry and failed.value.summary["counts"] == {"duplicate": 1, "invalid": 1}
    assert len(mock.received()) == 2
    assert [example.outcome(c) for c in (0, 1, 2, 3, 70, 75, 130, 143)] == [
        "success", "fail", "fail", "fail", "fail", "retry", "retry", "retry",
    ]  # fmt: skip


def test_hostile_values_in_a_table_make_only_their_rows_invalid(tmp_path: Path, mock: Mock, mapping: str) -> None:
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    data = pa.table(
        {
            "customer_id": pa.array([1, 2, 3, 4], pa.int64()),
            "email": pa.array(["a@x.com", "b@x.com", "c@x.com", "d@x.com"]),
            "total": pa.array([Decimal("1"), Decimal("1e37"), None, Decimal("2")], pa.decimal128(38, 0)),
            # row 3 is in the year 10000
            "at": pa.array(
                [1, 2, 253_402_300_800_000_000 + 3_600_000_000, int(far.timestamp() * 1e6)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    summary = run_import(config(tmp_path, mock, mapping, data))
    report = {r["row_number"]: r for r in read_report(Path(summary.report))}
    assert summary.exit_code == 1
    assert report["1"]["status"] == "sent" and report["4"]["status"] == "sent"
    assert report["2"]["status"] == "invalid" and "too large for Money" in report["2"]["detail"]
    assert report["3"]["status"] == "invalid" and "out of range" in report["3"]["detail"]


def test_a_stream_with_no_room_to_spool_is_one_clear_error(tmp_path: Path, monkeypatch: Any) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(tiny))
        data = table(20_000)
        source = TableSource(pa.RecordBatchReader.from_batches(data.schema, data.to_batches()), "k")
        with pytest.raises(InputError, match=r"k: no room to spool the stream in .*set TMPDIR"):
            source.scan()
        assert not list(tiny.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)
