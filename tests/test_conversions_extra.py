"""Conversions real exports need: localised numbers, several formats, epochs, Excel
serials, custom boolean words, per-field zones; and row filters."""

from __future__ import annotations

from typing import Any

import pytest

from importer.errors import MappingError
from importer.mapping import compile_mapping
from importer.payload import PayloadBuilder
from importer.source import Row


def field_value(spec: dict[str, Any], value: Any, **mapping: Any) -> Any:
    doc = {
        "custom_event_id": 1,
        "customer": {"crm_id": "crm"},
        "data_fields": [{"name": "f", "column": "v", **spec}],
        **mapping,
    }
    rendered = PayloadBuilder(compile_mapping(doc)).render(Row(1, {"crm": "x", "v": value}))
    if rendered.body is None:
        return rendered.detail
    return rendered.body["dataFields"][0]["value"]


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"type": "Money", "decimal": ","}, "1.234,5", "1234.50"),
        ({"type": "Money", "decimal": ","}, "1 234,56", "1234.56"),
        ({"type": "Money", "decimal": ","}, "1\u00a0234,56", "1234.56"),
        ({"type": "Money", "decimal": ","}, "12,3", "12.30"),
        ({"type": "Number", "decimal": ","}, "-0,5", "-0.5"),
        ({"type": "Number", "thousands": ","}, "1,234,567.25", "1234567.25"),
        ({"type": "Number", "thousands": "'"}, "1'000", "1000"),
        ({"type": "DateTime", "format": ["%d.%m.%Y %H:%M", "%Y-%m-%d"]}, "26.11.2026 10:05", "2026-11-26T10:05:00Z"),
        ({"type": "DateTime", "format": ["%d.%m.%Y %H:%M", "%Y-%m-%d"]}, "2026-11-26", "2026-11-26T00:00:00Z"),
        ({"type": "DateTime", "format": "epoch_s"}, "1700000000", "2023-11-14T22:13:20Z"),
        ({"type": "DateTime", "format": "epoch_s"}, 1700000000, "2023-11-14T22:13:20Z"),
        ({"type": "DateTime", "format": "epoch_ms"}, "1700000000123", "2023-11-14T22:13:20Z"),
        ({"type": "Date", "format": "excel"}, "46352", "2026-11-26"),
        ({"type": "DateTime", "format": "excel"}, "46352.5", "2026-11-26T12:00:00Z"),
        ({"type": "DateTime", "timezone": "America/New_York"}, "2026-11-26 10:00:00", "2026-11-26T15:00:00Z"),
        ({"type": "Boolean", "true_values": ["tak"], "false_values": ["nie"]}, "TAK", "true"),
        ({"type": "Boolean", "true_values": ["tak"], "false_values": ["nie"]}, "nie", "false"),
    ],
)
def test_localised_and_special_inputs(spec: dict[str, Any], value: Any, expected: str) -> None:
    assert field_value(spec, value) == expected


@pytest.mark.parametrize(
    ("spec", "value", "problem"),
    [
        ({"type": "Money", "decimal": ","}, "1.23.4,5", "is not a number"),
        ({"type": "Money", "decimal": ","}, "12,34,5", "is not a number"),
        ({"type": "Money"}, "1 234.50", "is not a number"),
        ({"type": "Number", "thousands": ","}, "12,34", "is not a number"),
        (
            {"type": "DateTime", "format": ["%d.%m.%Y", "%Y/%m/%d"]},
            "2026-11-26",
            "does not match format %d.%m.%Y or %Y/%m/%d",
        ),
        ({"type": "Date", "format": "excel"}, "-3", "does not match format excel"),
        ({"type": "Boolean", "true_values": ["tak"], "false_values": ["nie"]}, "yes", "is not a boolean (nie/tak)"),
    ],
)
def test_localised_inputs_still_reject_garbage(spec: dict[str, Any], value: Any, problem: str) -> None:
    assert problem in field_value(spec, value)


def test_mapping_time_zone_applies_unless_the_field_has_its_own() -> None:
    assert field_value({"type": "DateTime"}, "2026-11-26 10:00:00", timezone="Europe/Warsaw") == "2026-11-26T09:00:00Z"
    spec = {"type": "DateTime", "timezone": "UTC"}
    assert field_value(spec, "2026-11-26 10:00:00", timezone="Europe/Warsaw") == "2026-11-26T10:00:00Z"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "Money", "decimal": ";"}, "data_fields[0].decimal: must be '.' or ','"),
        ({"type": "Money", "decimal": ",", "thousands": ","}, "data_fields[0].thousands: must be marks among"),
        ({"type": "String", "decimal": ","}, "data_fields[0].decimal: applies to Number and Money fields only"),
        ({"type": "Number", "true_values": ["x"]}, "data_fields[0].true_values: applies to Boolean fields only"),
        ({"type": "Date", "format": []}, "data_fields[0].format: is a strptime format, or a list of them"),
        ({"type": "DateTime", "timezone": "Nowhere/City"}, "data_fields[0].timezone: unknown time zone 'Nowhere/City'"),
    ],
)
def test_option_errors_name_their_key(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping(
            {"custom_event_id": 1, "customer": {"crm_id": "c"}, "data_fields": [{"name": "f", "column": "v", **spec}]}
        )
    assert message in str(info.value)


FILTERED = {
    "custom_event_id": 1,
    "timezone": "Europe/Warsaw",
    "customer": {"crm_id": "crm"},
    "filter": [
        {"column": "status", "in": ["paid", "shipped"]},
        {"column": "at", "after": "2024-01-01", "format": ["%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M:%S"]},
        {"column": "at", "before": "2025-01-01T00:00:00", "format": ["%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M:%S"]},
    ],
}


@pytest.mark.parametrize(
    ("values", "outcome"),
    [
        ({"status": "paid", "at": "2024-06-01 10:00:00"}, "sent"),
        ({"status": "shipped", "at": "01.01.2024 00:00"}, "sent"),
        ({"status": "cancelled", "at": "2024-06-01 10:00:00"}, "filter: status in [paid, shipped] is not true"),
        ({"status": "paid", "at": "31.12.2023 23:59"}, "filter: at after 2024-01-01T00:00:00+01:00 is not true"),
        ({"status": "paid", "at": "2025-01-01 00:00:00"}, "filter: at before 2025-01-01T00:00:00+01:00 is not true"),
        ({"status": "paid", "at": None}, "filter: at after 2024-01-01T00:00:00+01:00 is not true"),
        (
            {"status": "paid", "at": "soon"},
            "invalid: column 'at' (filter): 'soon' does not match format %d.%m.%Y %H:%M or %Y-%m-%d %H:%M:%S",
        ),
    ],
)
def test_filters(values: dict[str, Any], outcome: str) -> None:
    rendered = PayloadBuilder(compile_mapping(FILTERED)).render(Row(1, {"crm": "x", **values}))
    if outcome == "sent":
        assert rendered.body is not None
    elif outcome.startswith("invalid: "):
        assert (
            rendered.body is None and rendered.skipped is None and rendered.detail == outcome.removeprefix("invalid: ")
        )
    else:
        assert rendered.body is None and rendered.skipped == outcome


def test_filter_errors_and_columns() -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping(
            {
                **FILTERED,
                "filter": [
                    {"column": "a", "equals": 1, "in": [1]},
                    {"column": "b", "after": "someday"},
                    {"colum": "c"},
                ],
            }
        )
    text = str(info.value)
    assert "filter[0]: needs exactly one of" in text
    assert "filter[1].after: must be an ISO date or date-time like 2024-01-01, got 'someday'" in text
    assert "filter[2]: needs 'column: NAME'" in text
    with pytest.raises(MappingError, match=r"column 'status' \(filter\[0\]\) not found in in\.csv"):
        compile_mapping(FILTERED).check_columns("in.csv", ["crm", "at"])
