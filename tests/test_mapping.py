from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from importer.errors import MappingError
from importer.mapping import compile_mapping, load_mapping

BASE: dict[str, Any] = {
    "endpoint": "customer",
    "custom_event_id": 5,
    "customer": {"email": "email"},
    "data_fields": [{"name": "total", "type": "Money", "column": "total"}],
}


def errors_of(doc: Any) -> str:
    with pytest.raises(MappingError) as info:
        compile_mapping(doc, source="m.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"colour": "red"},
            "m.yaml: colour: unknown key 'colour' (expected one of endpoint, custom_event_id, timezone, ambiguous, nonexistent, customer, segments, data_fields, filter, dedup)",
        ),
        ({"endpoint": "bulk"}, "m.yaml: endpoint: unknown endpoint 'bulk' (expected customer or segments)"),
        ({"custom_event_id": None}, "m.yaml: custom_event_id: is required (an integer, or {column: NAME})"),
        ({"custom_event_id": -4}, "m.yaml: custom_event_id: must be a positive 32-bit integer, got -4"),
        ({"timezone": "Mars/Olympus"}, "m.yaml: timezone: unknown time zone 'Mars/Olympus' (e.g. Europe/Warsaw, UTC)"),
        (
            {"customer": {"mail": "email"}},
            "m.yaml: customer.mail: unknown key 'mail' (expected one of id, email, email_md5, email_sha256, phone, crm_id)",
        ),
        (
            {"customer": {}},
            "m.yaml: customer: needs at least one identifier (id, email, email_md5, email_sha256, phone, crm_id)",
        ),
        (
            {"customer": {"phone": {"column": "p", "default_region": "Poland"}}},
            "m.yaml: customer.phone.default_region: must be a two-letter region code like PL, got 'Poland'",
        ),
        ({"segments": [1]}, "m.yaml: segments: only allowed with endpoint segments"),
        (
            {"data_fields": [{"name": "total", "type": "Decimal", "column": "total"}]},
            "m.yaml: data_fields[0].type: unknown type 'Decimal' (expected one of String, Text, Number, Money, Date, DateTime, Boolean, URL)",
        ),
        (
            {"data_fields": [{"name": "x", "type": "String", "column": "a", "value": "b"}]},
            "m.yaml: data_fields[0]: needs exactly one of 'column' or 'value'",
        ),
        ({"data_fields": [{"name": "x", "type": "String", "colum": "a"}]}, "data_fields[0].colum: unknown key 'colum'"),
        (
            {"data_fields": [{"name": "x", "type": "Money", "column": "a", "format": "%d"}]},
            "data_fields[0].format: applies to Date and DateTime fields only",
        ),
        (
            {"data_fields": [{"name": "x", "type": "Money", "column": "a", "required": "yes"}]},
            "data_fields[0].required: must be true or false, got 'yes'",
        ),
    ],
)
def test_each_mapping_error_names_its_key(change: dict[str, Any], message: str) -> None:
    assert message in errors_of({**BASE, **change})


def test_every_problem_is_reported_at_once() -> None:
    text = errors_of(
        {**BASE, "colour": 1, "endpoint": "customer", "data_fields": [{"name": "a", "type": "Nope", "column": "a"}]}
    )
    assert "colour: unknown key" in text and "data_fields[0].type: unknown type 'Nope'" in text


def test_segments_mapping() -> None:
    m = compile_mapping({"endpoint": "segments", "custom_event_id": 1, "segments": [1, 5, 15]})
    assert m.path == "/scenariocustomevents/withsegments" and m.segments == (1, 5, 15)
    m = compile_mapping({"endpoint": "segments", "custom_event_id": {"column": "ev"}, "segments": {"column": "segs"}})
    assert m.segments_column == "segs" and m.event_id_column == "ev"
    assert "segments[1]: must be a positive 32-bit integer, got 'x'" in errors_of(
        {"endpoint": "segments", "custom_event_id": 1, "segments": [1, "x"]}
    )
    assert "customer: not allowed with endpoint segments" in errors_of(
        {"endpoint": "segments", "custom_event_id": 1, "segments": [1], "customer": {"id": "a"}}
    )


def test_hash_of_email_uses_the_email_column() -> None:
    m = compile_mapping({"custom_event_id": 1, "customer": {"email": "E_Mail", "email_md5": {"hash_of": "email"}}})
    assert {(i.key, i.kind, i.column) for i in m.identifiers} == {
        ("email", "email", "E_Mail"),
        ("email_md5", "email_md5_of", "E_Mail"),
    }


def test_missing_columns_are_named(tmp_path: Path) -> None:
    m = compile_mapping({**BASE, "data_fields": [{"name": "t", "type": "Money", "column": "totl"}]}, source="m.yaml")
    with pytest.raises(MappingError) as info:
        m.check_columns("in.csv", ["email", "total"])
    assert (
        str(info.value) == "m.yaml: column 'totl' (data_fields[0] (t)) not found in in.csv (its columns: email, total)"
    )


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("endpoint: customer\ncustomer: [unclosed\n")
    with pytest.raises(MappingError, match=r"not valid YAML at line \d+, column \d+"):
        load_mapping(str(p))
    with pytest.raises(MappingError, match=r"mapping file not found: nope\.yaml"):
        load_mapping("nope.yaml")


def test_example_mappings_load() -> None:
    root = Path(__file__).resolve().parent.parent / "mappings"
    for path in root.glob("*.yaml"):
        assert yaml.safe_load(path.read_text())
        load_mapping(str(path))
