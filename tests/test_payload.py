from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from importer.errors import MappingError
from importer.mapping import compile_mapping
from importer.payload import PayloadBuilder
from importer.source import Row

MAPPING = {
    "endpoint": "customer",
    "custom_event_id": 42,
    "timezone": "Europe/Warsaw",
    "customer": {
        "id": "cid",
        "email": "email",
        "email_md5": {"hash_of": "email"},
        "email_sha256": {"hash_of": "email"},
        "phone": {"column": "phone", "default_region": "PL"},
        "crm_id": "crm",
    },
    "data_fields": [
        {"name": "total", "type": "Money", "column": "total", "required": True},
        {"name": "at", "type": "DateTime", "column": "at"},
        {"name": "channel", "type": "String", "value": "web"},
    ],
}


def render(values: dict[str, Any], mapping: dict[str, Any] | None = None) -> Any:
    return PayloadBuilder(compile_mapping(mapping or MAPPING)).render(Row(1, values))


def test_full_body() -> None:
    r = render(
        {
            "cid": "17",
            "email": " Anna@Example.com ",
            "phone": "600 123 456",
            "crm": 900123,
            "total": 19.989999,
            "at": "2026-11-26 10:00:00",
        }
    )
    assert r.errors == ()
    assert r.body == {
        "customEventId": 42,
        "customerId": 17,
        "customerEmail": "anna@example.com",
        "customerEmailMd5": "6b56db1f84a3997b902509d3fbf0a306",
        "customerEmailSha256": "f7d54c22dda5b1780276601cd005909b70543fc4a6ba72d735b4cb9bbb611f01",
        "customerPhone": "+48600123456",
        "customerCrmId": "900123",
        "dataFields": [
            {"name": "total", "type": "Money", "value": "19.99"},
            {"name": "at", "type": "DateTime", "value": "2026-11-26T09:00:00Z"},
            {"name": "channel", "type": "String", "value": "web"},
        ],
    }
    assert r.customer_ref == "900123"


def test_constants_keep_their_place_and_bad_constants_are_mapping_errors() -> None:
    mapping = {
        "custom_event_id": 1,
        "customer": {"crm_id": "crm"},
        "data_fields": [
            {"name": "a", "type": "Number", "column": "a"},
            {"name": "k", "type": "Money", "value": 5},
            {"name": "b", "type": "Number", "column": "b"},
        ],
    }
    body = render({"crm": "x", "a": None, "b": "2"}, mapping).body
    assert body["dataFields"] == [
        {"name": "k", "type": "Money", "value": "5.00"},
        {"name": "b", "type": "Number", "value": "2"},
    ]
    mapping["data_fields"][1]["value"] = "lots"
    with pytest.raises(MappingError, match=r"data_fields\[1\]\.value: 'lots' is not a number"):
        PayloadBuilder(compile_mapping(mapping))


def test_empty_cells_are_omitted_and_ref_never_shows_an_email() -> None:
    r = render({"cid": None, "email": "a@example.com", "phone": None, "crm": None, "total": Decimal("5"), "at": None})
    assert r.body is not None
    assert set(r.body) == {"customEventId", "customerEmail", "customerEmailMd5", "customerEmailSha256", "dataFields"}
    assert r.customer_ref.startswith("sha256:") and len(r.customer_ref) == 19
    assert "a@example.com" not in r.customer_ref


def test_invalid_row_lists_every_problem_and_has_no_body() -> None:
    r = render({"cid": "x1", "email": "nope", "phone": None, "crm": None, "total": None, "at": "31/02/2024"})
    assert r.body is None
    text = r.detail
    assert "column 'cid' (customer.id)" in text
    assert "column 'email' (customer.email)" in text
    assert "column 'total' (total): empty but required" in text
    assert "column 'at' (at): '31/02/2024' does not match" in text
    assert "nope" not in text  # the raw email is not echoed


def test_row_without_any_identifier_is_invalid() -> None:
    r = render({"cid": None, "email": None, "phone": None, "crm": None, "total": "1", "at": None})
    assert r.body is None and r.detail == "no customer identifier: every mapped identifier column is empty"


def test_parquet_typed_values() -> None:
    r = render(
        {
            "cid": 5,
            "email": None,
            "phone": 48600123456,
            "crm": None,
            "total": Decimal("10.005"),
            "at": datetime(2026, 1, 1, 12, tzinfo=UTC),
        }
    )
    assert r.body is not None
    assert r.body["customerPhone"] == "+48600123456"
    assert r.body["dataFields"][0]["value"] == "10.01"
    assert r.body["dataFields"][1]["value"] == "2026-01-01T12:00:00Z"


def test_segments_and_per_row_event_id() -> None:
    mapping = {"endpoint": "segments", "custom_event_id": {"column": "ev"}, "segments": {"column": "segs"}}
    assert render({"ev": "9", "segs": "1, 5|15;2"}, mapping).body == {"customEventId": 9, "segments": [1, 5, 15, 2]}
    assert render({"ev": 9.0, "segs": 3}, mapping).body == {"customEventId": 9, "segments": [3]}
    bad = render({"ev": "0", "segs": ""}, mapping)
    assert bad.body is None and len(bad.errors) == 2


def test_ragged_row_error_makes_row_invalid() -> None:
    r = PayloadBuilder(compile_mapping(MAPPING)).render(
        Row(
            3,
            {"cid": "1", "email": None, "phone": None, "crm": None, "total": "1", "at": None},
            "row has 2 fields, the header has 6",
        )
    )
    assert r.body is None and str(r.errors[0]) == "row has 2 fields, the header has 6"
