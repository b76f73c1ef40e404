from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from importer.errors import InputError
from importer.source import SAMPLE_BYTES, open_source, sniff_delimiter


def rows_of(path: Path, **kw: str) -> list[tuple[int, dict[str, object], str | None]]:
    return [(r.number, r.values, r.error) for r in open_source(str(path), **kw).rows()]


def test_bom_crlf_quoted_newline_and_text_values(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_bytes(b'\xef\xbb\xbfid,note,zip\r\n00123,"a, ""quoted""\r\nsecond line",01234\r\n\r\n  \r\n7,,\r\n')
    src = open_source(str(p))
    assert src.columns == ["id", "note", "zip"]
    assert rows_of(p) == [
        (1, {"id": "00123", "note": 'a, "quoted"\r\nsecond line', "zip": "01234"}, None),
        (2, {"id": "7", "note": None, "zip": None}, None),
    ]


@pytest.mark.parametrize("delim", [";", "\t", "|", ","])
def test_delimiter_is_sniffed(tmp_path: Path, delim: str) -> None:
    p = tmp_path / "in.csv"
    p.write_text(delim.join(["a", "b", "c"]) + "\n" + delim.join(["1", "x,y" if delim != "," else "xy", "3"]) + "\n")
    src = open_source(str(p))
    assert src.delimiter == delim
    assert src.columns == ["a", "b", "c"]


def test_sniffer_prefers_consistent_split() -> None:
    # Commas inside values, semicolons between them (a European export).
    sample = "name;amount;city\nSmith, J;12,50;Kraków\nDoe, A;3,10;Łódź\n"
    assert sniff_delimiter(sample) == ";"


def test_delimiter_override(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("a;b\n1;2\n")
    assert open_source(str(p), delimiter=",").columns == ["a;b"]
    assert open_source(str(p), delimiter="tab").columns == ["a;b"]


def test_latin1_needs_encoding(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_bytes("city\nKraków\n".encode("latin-1"))
    with pytest.raises(InputError, match="--encoding"):
        open_source(str(p))
    assert rows_of(p, encoding="latin-1") == [(1, {"city": "Kraków"}, None)]


def test_bad_bytes_after_the_first_block_make_that_row_invalid(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    filler = "".join(f"row{i},ok\n" for i in range(SAMPLE_BYTES // 8))
    p.write_bytes(b"name,v\n" + filler.encode() + b"bad\xff\xfe,ok\nlast,ok\n")
    rows = rows_of(p)
    bad = [r for r in rows if r[2]]
    assert len(bad) == 1
    assert bad[0][0] == len(rows) - 1
    assert "undecodable" in (bad[0][2] or "") and "'name'" in (bad[0][2] or "")
    assert rows[-1][1] == {"name": "last", "v": "ok"}


def test_ragged_rows_are_invalid_not_a_crash(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("a,b,c\n1,2\n1,2,3,4\n1,2,3\n")
    rows = rows_of(p)
    assert rows[0][2] == "row has 2 fields, the header has 3"
    assert rows[0][1] == {"a": "1", "b": "2", "c": None}
    assert rows[1][2] == "row has 4 fields, the header has 3"
    assert rows[2][2] is None


def test_unnamed_and_repeated_header_columns_get_names(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("a,note,,note,\n1,x,y,z,\n")
    assert open_source(str(p)).columns == ["a", "note", "column_3", "note_2", "column_5"]


def test_empty_trailing_fields_are_not_ragged(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("a;b\n1;2;\n1;2;;3\n")
    rows = rows_of(p)
    assert rows[0] == (1, {"a": "1", "b": "2"}, None)
    assert rows[1][2] == "row has 4 fields, the header has 2"


def test_header_problems_are_input_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="no header"):
        open_source(str(empty))
    with pytest.raises(InputError, match=r"input file not found: nope\.csv"):
        open_source("nope.csv")


def test_parquet_keeps_exact_types_and_nulls(tmp_path: Path) -> None:
    p = tmp_path / "in.parquet"
    table = pa.table(
        {
            "crm": pa.array([900123, None, 5], pa.int64()),
            "amount": pa.array([Decimal("19.99"), Decimal("0.10"), None], pa.decimal128(10, 2)),
            "day": pa.array([date(2026, 11, 26), None, date(2026, 1, 1)], pa.date32()),
            "at_utc": pa.array([datetime(2026, 11, 26, 10, tzinfo=UTC), None, None], pa.timestamp("ns", tz="UTC")),
            "at_naive": pa.array([datetime(2026, 11, 26, 10, 0, 0, 123456), None, None], pa.timestamp("ns")),
            "flag": pa.array([True, False, None], pa.bool_()),
            "phone": pa.array(["+48600123456", None, ""], pa.string()),
        }
    )
    pq.write_table(table, p, row_group_size=2)
    src = open_source(str(p))
    assert src.total_rows == 3
    rows = list(src.rows())
    assert [r.number for r in rows] == [1, 2, 3]
    first = rows[0].values
    assert first["crm"] == 900123 and isinstance(first["crm"], int)
    assert first["amount"] == Decimal("19.99")
    assert first["day"] == date(2026, 11, 26)
    assert first["at_utc"] == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert first["at_naive"] == datetime(2026, 11, 26, 10, 0, 0, 123456)
    assert first["flag"] is True
    assert rows[1].values["crm"] is None and rows[1].values["flag"] is False
    assert rows[2].values["amount"] is None


def test_parquet_detected_by_magic_bytes(tmp_path: Path) -> None:
    p = tmp_path / "export.dat"
    pq.write_table(pa.table({"a": [1]}), p)
    assert open_source(str(p)).columns == ["a"]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        open_source(str(broken))


def test_gzipped_csv_reads_like_the_plain_file(tmp_path: Path) -> None:
    import gzip

    text = "email;total\r\n" + "".join(f"u{i}@example.com;{i},5\r\n" for i in range(1, 2001))
    plain = tmp_path / "in.csv"
    plain.write_text(text, newline="")
    packed = tmp_path / "in.csv.gz"
    packed.write_bytes(gzip.compress(text.encode("cp1250")))
    src = open_source(str(packed), encoding="cp1250")
    assert src.delimiter == ";" and src.columns == ["email", "total"]
    assert [(r.number, r.values) for r in src.rows()] == [(r.number, r.values) for r in open_source(str(plain)).rows()]
    assert src.total_rows == 2000
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress("ä;b\n".encode("latin-1")))
    with pytest.raises(InputError, match="--encoding"):
        open_source(str(bad))
