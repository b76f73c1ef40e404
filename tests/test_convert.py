from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from importer.convert import CONVERTERS, convert_date, convert_datetime
from importer.errors import ConversionError

WARSAW = ZoneInfo("Europe/Warsaw")


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("String", "Kraków", "Kraków"),
        ("String", 900123, "900123"),
        ("String", 900123.0, "900123"),
        ("Text", "line one\nline two", "line one\nline two"),
        ("Number", "42", "42"),
        ("Number", "00123", "123"),
        ("Number", "-3.5", "-3.5"),
        ("Number", "42.0", "42"),
        ("Number", "1e3", "1000"),
        ("Number", "0.000001", "0.000001"),
        ("Number", 7, "7"),
        ("Number", 2.5, "2.5"),
        ("Number", Decimal("12345678901234567890.123456789"), "12345678901234567890.123456789"),
        ("Money", "1234.5", "1234.50"),
        ("Money", 19.989999, "19.99"),
        ("Money", "0.005", "0.01"),
        ("Money", "2.675", "2.68"),
        ("Money", "-1.005", "-1.01"),
        ("Money", Decimal("129.90"), "129.90"),
        ("Money", 100, "100.00"),
        ("Date", "2026-11-26", "2026-11-26"),
        ("Date", date(2026, 11, 26), "2026-11-26"),
        ("Date", datetime(2026, 11, 26, 23, 0), "2026-11-26"),
        ("DateTime", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z"),
        ("DateTime", "2026-11-26 10:00:00.987", "2026-11-26T10:00:00Z"),
        ("DateTime", "2026-11-26T12:00:00+02:00", "2026-11-26T10:00:00Z"),
        ("DateTime", datetime(2026, 11, 26, 10, tzinfo=timezone(timedelta(hours=-5))), "2026-11-26T15:00:00Z"),
        ("DateTime", date(2026, 11, 26), "2026-11-26T00:00:00Z"),
        ("Boolean", "TRUE", "true"),
        ("Boolean", "no", "false"),
        ("Boolean", " Y ", "true"),
        ("Boolean", "f", "false"),
        ("Boolean", "1", "true"),
        ("Boolean", False, "false"),
        ("Boolean", 0, "false"),
        ("URL", "https://shop.example.com/p/1?x=1", "https://shop.example.com/p/1?x=1"),
        ("URL", " http://example.com ", "http://example.com"),
    ],
)
def test_converts_to_wire_format(type_: str, value: Any, expected: str) -> None:
    assert CONVERTERS[type_](value) == expected


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("Number", "12,3"),
        ("Number", "1,234"),
        ("Number", "abc"),
        ("Number", "nan"),
        ("Number", float("inf")),
        ("Number", True),
        ("Money", "12,3,4"),
        ("Money", "$5"),
        ("Money", 1e26),  # more digits than the decimal context: found by hypothesis
        ("Date", "2026-02-30"),
        ("Date", "yesterday"),
        ("DateTime", "31/02/2024 25:61"),
        ("DateTime", "2026-13-01T00:00:00"),
        ("Boolean", "maybe"),
        ("Boolean", 2),
        ("URL", "javascript:alert(1)"),
        ("URL", "ftp://example.com/x"),
        ("URL", "shop.example.com/p/1"),
        ("URL", "https://exa mple.com/"),
        ("URL", "https://"),
    ],
)
def test_rejects_values_that_do_not_convert(type_: str, value: Any) -> None:
    with pytest.raises(ConversionError):
        CONVERTERS[type_](value)


def test_date_with_input_format() -> None:
    assert convert_date("26.11.2026", formats="%d.%m.%Y") == "2026-11-26"
    with pytest.raises(ConversionError, match=r"does not match format %d\.%m\.%Y"):
        convert_date("2026-11-26", formats="%d.%m.%Y")


def test_naive_datetime_is_read_in_the_mapping_zone() -> None:
    # 10:00 in Warsaw is 09:00 UTC in winter and 08:00 UTC in summer.
    assert convert_datetime("2026-11-26 10:00:00", tz=WARSAW) == "2026-11-26T09:00:00Z"
    assert convert_datetime("2026-07-01 10:00:00", tz=WARSAW) == "2026-07-01T08:00:00Z"
    assert convert_datetime(datetime(2026, 7, 1, 10), tz=WARSAW) == "2026-07-01T08:00:00Z"
    # A value with its own zone ignores the mapping's zone.
    assert convert_datetime("2026-07-01T10:00:00Z", tz=WARSAW) == "2026-07-01T10:00:00Z"


def test_datetime_with_format() -> None:
    assert convert_datetime("26/11/2026 10:05", formats="%d/%m/%Y %H:%M") == "2026-11-26T10:05:00Z"
