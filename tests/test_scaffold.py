from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from importer.mapping import compile_mapping
from importer.scaffold import scaffold
from importer.source import open_source
from tests.conftest import run_cli, write_csv


def guessed(path: Path, **kw: object) -> dict[str, object]:
    doc = yaml.safe_load(scaffold(open_source(str(path)), **kw))  # type: ignore[arg-type]
    compile_mapping(doc)
    return doc  # type: ignore[no-any-return]


def fields_by_column(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    return {f["column"]: f for f in doc["data_fields"]}  # type: ignore[attr-defined,index]


def test_identifiers_types_and_formats_from_a_csv(tmp_path: Path) -> None:
    header = ["Customer Email", "crm_id", "tel", "ordered", "day", "amount", "qty", "zip", "paid", "url", "note", "md5"]
    rows = [
        [
            f" User{i}@Example.com",
            f"C{i}",
            f"600 100 {i:03d}",
            f"26.11.2026 10:{i % 60:02d}",
            f"{1 + i % 28:02d}/11/2026",
            f"{i},50",
            str(i),
            f"0{i:04d}",
            "tak" if i % 2 else "no",
            f"https://x.example/{i}",
            "free text",
            "a" * 32,
        ]
        for i in range(1, 41)
    ]
    rows[5][3] = "bad date"
    doc = guessed(write_csv(tmp_path / "export.csv", header, rows), event_id=31)
    assert doc["custom_event_id"] == 31 and doc["endpoint"] == "customer"
    assert doc["customer"] == {
        "email": "Customer Email",
        "crm_id": "crm_id",
        "phone": {"column": "tel", "default_region": "PL"},
        "email_md5": "md5",
    }
    fields = fields_by_column(doc)
    assert fields["ordered"] == {"name": "ordered", "type": "DateTime", "column": "ordered", "format": "%d.%m.%Y %H:%M"}
    assert fields["day"]["type"] == "Date" and fields["day"]["format"] == "%d/%m/%Y"
    assert fields["amount"] == {"name": "amount", "type": "Money", "column": "amount", "decimal": ","}
    assert fields["qty"]["type"] == "Number"
    assert fields["zip"]["type"] == "String"  # leading zeros stay text
    assert fields["paid"]["type"] == "String"  # 'tak' is no default boolean word
    assert fields["url"]["type"] == "URL" and fields["note"]["type"] == "String"


def test_international_phone_numbers_are_recognised_by_content(tmp_path: Path) -> None:
    rows = [[f"C{i}", f"+48 600 100 {i:03d}"] for i in range(1, 11)]
    doc = guessed(write_csv(tmp_path / "e.csv", ["crm_id", "kontakt"], rows))
    assert doc["customer"] == {"crm_id": "crm_id", "phone": {"column": "kontakt"}}


def test_comments_say_how_many_values_matched(tmp_path: Path) -> None:
    rows = [[f"C{i}", "2026-11-26 10:00:00"] for i in range(1, 21)]
    rows[3][1] = "31/02/2024 25:61"
    text = scaffold(open_source(str(write_csv(tmp_path / "e.csv", ["crm_id", "at"], rows))))
    assert (
        "# 19/20 sampled values are ISO 8601 date-times; the rest will be invalid rows, e.g. '31/02/2024 25:61'" in text
    )
    assert "custom_event_id: 1  # TODO" in text


def test_parquet_types_and_segments(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(
        pa.table(
            {
                "segs": ["1,5", "2|3", "7"],
                "at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 3),
                "budget": pa.array([Decimal("1.50")] * 3, pa.decimal128(8, 2)),
                "n": [1, 2, None],
                "on": [True, False, True],
            }
        ),
        path,
    )
    doc = guessed(path, endpoint="segments")
    assert doc["segments"] == {"column": "segs"}
    assert {c: f["type"] for c, f in fields_by_column(doc).items()} == {
        "at": "DateTime",
        "budget": "Money",
        "n": "Number",
        "on": "Boolean",
    }


def test_cli_writes_a_mapping_that_validate_accepts(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", ["email", "total"], [["a@example.com", "1.50"], ["b@example.com", "x"]])
    first = run_cli("init-mapping", "in.csv", "--event-id", "7", "-o", "m.yaml", cwd=tmp_path)
    assert first.returncode == 0 and "next: ecdp-import validate in.csv --mapping m.yaml" in first.stdout
    again = run_cli("init-mapping", "in.csv", "-o", "m.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "m.yaml exists; pass --force to overwrite it" in again.stderr
    check = run_cli("validate", "in.csv", "--mapping", "m.yaml", cwd=tmp_path)
    assert check.returncode in (0, 1), check.stderr
    printed = run_cli("init-mapping", "in.csv", cwd=tmp_path)
    assert printed.returncode == 0 and printed.stdout.startswith("# Starter mapping for in.csv")
    assert "custom_event_id: 1  # TODO" in printed.stdout
