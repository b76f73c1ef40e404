"""In-memory inputs (``importer.memory``): what their values become, and what makes two of
them the same content. Bugs found in review: categoricals and binary columns from pandas
and polars, layouts that hid equal values from the content hash, types that have no API
value, and ``validate`` of a stream."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer import RunConfig, StateError, run_import, validate
from importer.config import ValidateConfig
from importer.errors import InputError
from importer.memory import TableSource
from tests.conftest import Mock, read_report, run_cli
from tests.test_api import config as api_config

MAPPING = """\
custom_event_id: 77
customer: {crm_id: crm, email_sha256: {hash_of: mail}}
data_fields:
  - {name: tag, type: String, column: tag}
"""


@pytest.fixture
def mapping(tmp_path: Path) -> str:
    (tmp_path / "m.yaml").write_text(MAPPING)
    return str(tmp_path / "m.yaml")


def config(tmp_path: Path, mock: Mock, mapping: str, data: Any, **extra: Any) -> RunConfig:
    return api_config(tmp_path, mock, mapping, data, **{"import_key": "daily", **extra})


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- 1: categoricals are their values -----------------------------------------------------


def test_pandas_categoricals_of_other_values_are_other_content(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pd = pytest.importorskip("pandas")
    monday = pd.DataFrame({"crm": pd.Categorical(["C1", "C2"]), "mail": None, "tag": "x"})
    tuesday = pd.DataFrame({"crm": pd.Categorical(["C3", "C4"]), "mail": None, "tag": "x"})
    assert run_import(config(tmp_path, mock, mapping, monday)).counts == {"sent": 2}
    # The IPC body of a dictionary batch holds only the indices (0, 1 both days): the next
    # day's frame used to hash alike, send nothing, and report Monday's rows as sent.
    with pytest.raises(StateError, match="import key 'daily' was used before for other content"):
        run_import(config(tmp_path, mock, mapping, tuesday))
    again = run_import(config(tmp_path, mock, mapping, tuesday, import_key="daily-2"))
    assert again.counts == {"sent": 2}
    assert sorted(r["body"]["customerCrmId"] for r in mock.received()) == ["C1", "C2", "C3", "C4"]


# --- 10: the content hash is over values, not their layout --------------------------------


def _with_hidden_values(array: pa.Array) -> pa.Array:
    """The same values, with bytes under each null that a fresh array would not hold."""
    hidden = 12345 if pa.types.is_integer(array.type) else "hidden under a null"
    filled = pc.fill_null(array, hidden)
    return pa.Array.from_buffers(array.type, len(array), [array.buffers()[0], *filled.buffers()[1:]])


def _slices(array: pa.Array) -> list[pa.Array]:
    """The same values as slices of longer arrays: at an offset, and at offset 0 with
    validity bits set past the end."""
    pad = pa.array([None, 7, None] if pa.types.is_integer(array.type) else [None, "pad", None], array.type)
    after_pad = pa.concat_arrays([pad, array, pad]).slice(len(pad), len(array))
    before_pad = pa.concat_arrays([array, pad]).slice(0, len(array))
    return [after_pad, before_pad]


def _chunked(data: pa.Table, cuts: list[int]) -> pa.RecordBatchReader:
    """The table as a stream of slices, ``cuts`` rows long in turn."""
    batches, start, i = [], 0, 0
    while start < data.num_rows:
        batches.append(data.slice(start, cuts[i % len(cuts)]).to_batches()[0])
        start, i = start + cuts[i % len(cuts)], i + 1
    return pa.RecordBatchReader.from_batches(data.schema, batches)


def _layouts(ints: list[int | None], texts: list[str | None], cuts: list[int]) -> list[Any]:
    """The same rows, laid out in memory in every way the importer meets them."""
    n, s = pa.array(ints, pa.int64()), pa.array(texts, pa.string())
    plain = pa.table({"n": n, "s": s})
    hidden = pa.table({"n": _with_hidden_values(n), "s": _with_hidden_values(s)})
    sliced = [pa.table({"n": a, "s": b}) for a, b in zip(_slices(n), _slices(s), strict=True)]
    encodings = [plain.set_column(1, "s", s.dictionary_encode()), plain.set_column(1, "s", s.cast(pa.large_string()))]
    views = plain.set_column(1, "s", s.cast(pa.string_view()))
    return [plain, hidden, *sliced, *encodings, views, _chunked(hidden, cuts), _chunked(sliced[1], cuts)]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), st.one_of(st.none(), st.text(max_size=6))),
        min_size=1,
        max_size=200,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8),
    changed=st.integers(min_value=0),
)
def test_equal_values_hash_equal_whatever_their_layout(
    rows: list[tuple[int | None, str | None]], cuts: list[int], changed: int
) -> None:
    ints = [n for n, _ in rows]
    texts = [s for _, s in rows]
    digests = {TableSource(data, "k").scan() for data in _layouts(ints, texts, cuts)}
    assert len(digests) == 1
    at, value = changed % len(rows), ints[changed % len(rows)]
    nulled, moved, texted = list(ints), list(ints), list(texts)
    nulled[at] = 1 if value is None else None
    moved[at] = 1 if value is None else value - 1 if value > 0 else value + 1
    texted[at] = (texts[at] or "") + "x"
    for data in (*_layouts(nulled, texts, cuts), *_layouts(moved, texts, cuts), *_layouts(ints, texted, cuts)):
        assert TableSource(data, "k").scan() not in digests


def test_the_same_rows_from_polars_and_from_pyarrow_are_one_import(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pl = pytest.importorskip("polars")
    rows = {"crm": [f"C{i}" for i in range(3000)], "mail": [None] * 3000, "tag": ["a", None, "c"] * 1000}
    everything = pl.DataFrame(
        {**rows, "crm": ["X", *rows["crm"]], "mail": [None, *rows["mail"]], "tag": ["y", *rows["tag"]]}
    )
    assert run_import(config(tmp_path, mock, mapping, everything.slice(1))).counts == {"sent": 3000}
    # polars hands over string views, sliced; pyarrow these rows as plain strings
    again = run_import(config(tmp_path, mock, mapping, pa.table(rows)))
    assert again.rows_this_run == 0 and again.counts == {"sent": 3000}
    assert len(mock.received()) == 3000


# --- 5: binary is UTF-8 text, never Python's b'...' ---------------------------------------


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary(), pa.binary_view(), pa.binary(9)])
def test_binary_columns_are_sent_as_their_utf8_text(tmp_path: Path, mock: Mock, mapping: str, kind: Any) -> None:
    data = pa.table(
        {
            "crm": pa.array([b"CRM-00001", b"CRM-00002", b"CRM\xff00003"], kind),
            "mail": pa.array([b"jan@x.com", None, b"ola@x.com"], kind),
            "tag": pa.array(["a", "b", "c"]),
        }
    )
    summary = run_import(config(tmp_path, mock, mapping, data))
    assert summary.counts == {"sent": 2, "invalid": 1}
    bodies = sorted((r["body"] for r in mock.received()), key=lambda b: b["customerCrmId"])
    assert bodies[0]["customerCrmId"] == "CRM-00001" and bodies[0]["customerEmailSha256"] == sha256("jan@x.com")
    assert bodies[1]["customerCrmId"] == "CRM-00002" and "customerEmailSha256" not in bodies[1]
    report = read_report(Path(summary.report))
    assert report[2]["status"] == "invalid" and "is binary data that is not UTF-8 text" in report[2]["detail"]


def test_a_polars_binary_column_is_its_text(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"crm": [b"CRM-1"], "mail": [b"jan@example.com"], "tag": ["a"]})
    assert run_import(config(tmp_path, mock, mapping, frame)).counts == {"sent": 1}
    (request,) = mock.received()
    assert request["body"]["customerCrmId"] == "CRM-1"
    assert request["body"]["customerEmailSha256"] == sha256("jan@example.com")


# --- 9: dictionary columns are their values; other types are one clear error ---------------


def _categorical_frames() -> list[Any]:
    pl = pytest.importorskip("polars")
    pd = pytest.importorskip("pandas")
    crm, tag = ["C1", "C2", "C1"], ["web", None, "app"]
    return [
        pl.DataFrame(
            {"crm": crm, "mail": [None] * 3, "tag": tag},
            schema_overrides={"crm": pl.Categorical, "tag": pl.Categorical},
        ),
        pl.DataFrame(
            {"crm": crm, "mail": [None] * 3, "tag": tag},
            schema_overrides={"crm": pl.Enum(["C1", "C2"]), "tag": pl.Enum(["web", "app"])},
        ),
        pd.DataFrame({"crm": pd.Categorical(crm), "mail": None, "tag": pd.Categorical(tag)}),
    ]


@pytest.mark.parametrize("which", ["polars Categorical", "polars Enum", "pandas categorical"])
def test_categorical_columns_are_sent_as_their_values(tmp_path: Path, mock: Mock, mapping: str, which: str) -> None:
    frame = _categorical_frames()[["polars Categorical", "polars Enum", "pandas categorical"].index(which)]
    assert run_import(config(tmp_path, mock, mapping, frame)).counts == {"sent": 3}
    sent = {(r["body"]["customerCrmId"], str(r["body"].get("dataFields"))) for r in mock.received()}
    assert sent == {
        ("C1", "[{'name': 'tag', 'type': 'String', 'value': 'web'}]"),
        ("C2", "None"),
        ("C1", "[{'name': 'tag', 'type': 'String', 'value': 'app'}]"),
    }


def test_a_stream_whose_batches_have_other_dictionaries(tmp_path: Path, mock: Mock, mapping: str) -> None:
    # An Arrow IPC file holds one dictionary per column: the spool used to refuse the
    # second batch's ("Dictionary replacement detected"). Rows without an email are
    # invalid, so that only the first of each batch is sent.
    schema = pa.schema({"crm": pa.dictionary(pa.int32(), pa.string()), "mail": pa.string(), "tag": pa.string()})
    size = 9000  # more than a batch of the spool: each batch keeps its own dictionary
    batches = [
        pa.record_batch(
            [
                pa.array([f"C{day}-{i}" for i in range(size)]).dictionary_encode(),
                pa.array(["a@x.com"] + ["nope"] * (size - 1)),
                pa.array(["t"] * size),
            ],
            schema=schema,
        )
        for day in range(3)
    ]
    stream = pa.RecordBatchReader.from_batches(schema, batches)
    assert run_import(config(tmp_path, mock, mapping, stream)).counts == {"sent": 3, "invalid": 3 * size - 3}
    assert sorted(r["body"]["customerCrmId"] for r in mock.received()) == ["C0-0", "C1-0", "C2-0"]


EXOTIC = [
    (pa.array([{"a": 1}]), "struct<a: int64>, several values where an API field takes one"),
    (pa.array([[{"a": 1}]]), "list<item: struct<a: int64>>, lists of values the importer cannot convert"),
    (pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())), "map<string, int64>, several values"),
    (pa.array([timedelta(seconds=5)]), "duration[us], which has no API type: cast it to a number"),
    (pa.array([pa.MonthDayNano([1, 2, 3])]), "month_day_nano_interval, which has no API type: cast it to text"),
    (pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1])]), "sparse_union<0: int64=0>, several values"),
]


@pytest.mark.parametrize(("column", "message"), EXOTIC, ids=[str(c.type) for c, _ in EXOTIC])
def test_a_mapped_column_of_a_type_with_no_api_value_is_one_clear_error(
    tmp_path: Path, mock: Mock, mapping: str, column: pa.Array, message: str
) -> None:
    data = pa.table({"crm": ["C1"], "mail": [None], "tag": column})
    with pytest.raises(
        InputError, match="^" + re.escape(f"daily: column 'tag' (data_fields[0] (tag)) holds {message}")
    ):
        run_import(config(tmp_path, mock, mapping, data))
    assert mock.received() == []
    assert not (tmp_path / "state" / "reports").exists()  # refused before an import was recorded
    # unmapped, the same column is no concern: it goes to --errors as Python holds it
    fine = data.rename_columns(["crm", "mail", "unmapped"]).append_column("tag", pa.array(["t"]))
    assert run_import(config(tmp_path, mock, mapping, fine)).counts == {"sent": 1}


def test_a_parquet_file_with_a_mapped_struct_column_exits_2(tmp_path: Path, mock: Mock, mapping: str) -> None:
    pq.write_table(pa.table({"crm": ["C1"], "mail": [None], "tag": [{"a": 1}]}), tmp_path / "in.parquet")
    res = run_cli("run", "in.parquet", "--mapping", mapping, "--base-url", mock.url, "--state-dir", "s", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "in.parquet: column 'tag' (data_fields[0] (tag)) holds struct<a: int64>" in res.stderr
    assert mock.received() == []


# --- 8: validate reads a stream once, and needs no import key ------------------------------


class _CStream:
    """An object exporting only the Arrow C stream (as duckdb relations do)."""

    def __init__(self, data: pa.Table) -> None:
        self._data = data

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._data.__arrow_c_stream__(requested_schema)


def _streams() -> dict[str, Any]:
    pl = pytest.importorskip("polars")
    data = pa.table({"crm": ["C1", "C2", None], "mail": ["a@x.com", None, None], "tag": ["t", "t", "t"]})
    return {
        "polars": pl.from_arrow(data),
        "reader": pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=2)),
        "c stream": _CStream(data),
    }


@pytest.mark.parametrize("kind", ["polars", "reader", "c stream"])
def test_validate_reads_a_stream_once(tmp_path: Path, mapping: str, kind: str) -> None:
    report = tmp_path / "v.csv"
    summary = validate(ValidateConfig(inputs=(_streams()[kind],), mapping=mapping, report=str(report), import_key="k"))
    assert summary.counts == {"valid": 2, "invalid": 1}
    assert [r["status"] for r in read_report(report)] == ["valid", "valid", "invalid"]


def test_validate_needs_no_import_key(tmp_path: Path, mapping: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    summary = validate(ValidateConfig(inputs=(_streams()["polars"],), mapping=mapping))
    assert summary.counts == {"valid": 2, "invalid": 1}
    assert summary.report == "memory.validate.csv"
    assert {r["source_file"] for r in read_report(tmp_path / "memory.validate.csv")} == {"memory"}
