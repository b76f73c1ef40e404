"""Value conversion to the API's wire formats, one function per data-field type.

Every converter takes a present value (text from CSV, a typed value from Parquet) and
returns the wire string, or raises ConversionError with a message fit for the report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from importer.errors import ConversionError

TYPES = ("String", "Text", "Number", "Money", "Date", "DateTime", "Boolean", "URL")
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})
_BOOLEAN_WORDS = {**dict.fromkeys(TRUE_WORDS, "true"), **dict.fromkeys(FALSE_WORDS, "false")}
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_CENT = Decimal("0.01")
# scheme://[userinfo@]host[:port][/path?query#fragment], no whitespace or control characters.
_URL = re.compile(r"(?i:https?)://(?:[^\s\x00-\x1f/?#@]+@)?[^\s\x00-\x1f/?#@:]+(?::\d{1,5})?(?:[/?#][^\s\x00-\x1f]*)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")
_MAX_SHOWN = 40


def shown(value: Any) -> str:
    """Quote a value for an error message, cut short so a report stays readable."""
    text = str(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return repr(text)


def to_text(value: Any) -> str:
    """Render any input value as text, integers without a spurious ``.0``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def to_decimal(value: Any) -> Decimal:
    """Exact decimal of a number or numeric text; floats by their shortest repr."""
    if isinstance(value, bool):
        raise ConversionError(f"{value!r} is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConversionError(f"{value!r} is not a finite number")
        result = Decimal(repr(value))
    else:
        text = str(value).strip()
        if not _NUMBER_TEXT.fullmatch(text):
            raise ConversionError(f"{shown(value)} is not a number")
        try:
            result = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise ConversionError(f"{shown(value)} is not a number") from exc
    if not result.is_finite():
        raise ConversionError(f"{shown(value)} is not a finite number")
    return result


def _plain(number: Decimal) -> str:
    """Plain decimal notation: no exponent, integers without a fraction."""
    if number == number.to_integral_value():
        return str(int(number))
    return format(number, "f")


def convert_number(value: Any) -> str:
    return _plain(to_decimal(value))


def convert_money(value: Any) -> str:
    return format(to_decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP), "f")


def convert_string(value: Any) -> str:
    return to_text(value)


def convert_boolean(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value in (0, 1):
        return "true" if value else "false"
    wire = _BOOLEAN_WORDS.get(to_text(value).strip().lower())
    if wire is not None:
        return wire
    raise ConversionError(f"{shown(value)} is not a boolean (true/false/1/0/yes/no/y/n/t/f)")


def convert_url(value: Any) -> str:
    text = to_text(value).strip()
    if not _URL.fullmatch(text):
        if _SPACE_OR_CONTROL.search(text):
            raise ConversionError(f"{shown(value)} is not a valid URL (contains whitespace)")
        raise ConversionError(f"{shown(value)} is not an absolute http(s) URL")
    return text


def parse_datetime(value: Any, fmt: str | None) -> datetime:
    """A datetime from a typed value or text (``fmt`` for strptime, else ISO 8601)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = to_text(value).strip()
    try:
        if fmt:
            return datetime.strptime(text, fmt)
        return datetime.fromisoformat(text)
    except ValueError as exc:
        expected = f"format {fmt}" if fmt else "ISO 8601 (YYYY-MM-DD[THH:MM:SS][+zone])"
        raise ConversionError(f"{shown(value)} does not match {expected}") from exc


def convert_date(value: Any, fmt: str | None = None) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if fmt is None and isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass  # e.g. 2026-02-30: parse_datetime words the error
    return parse_datetime(value, fmt).date().isoformat()


def convert_datetime(value: Any, fmt: str | None = None, tz: tzinfo = UTC) -> str:
    moment = parse_datetime(value, fmt)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Converter = Callable[..., str]
CONVERTERS: dict[str, Converter] = {
    "String": convert_string,
    "Text": convert_string,
    "Number": convert_number,
    "Money": convert_money,
    "Date": convert_date,
    "DateTime": convert_datetime,
    "Boolean": convert_boolean,
    "URL": convert_url,
}
