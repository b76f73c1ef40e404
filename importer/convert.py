"""Value conversion to the API's wire formats, one function per data-field type.

Every converter takes a present value (text from CSV, a typed value from Parquet) and
returns the wire string, or raises ConversionError with a message fit for the report.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from importer.errors import ConversionError
from importer.source import Unreadable

TYPES = ("String", "Text", "Number", "Money", "Date", "DateTime", "Boolean", "URL")
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})
_BOOLEAN_WORDS = {**dict.fromkeys(TRUE_WORDS, "true"), **dict.fromkeys(FALSE_WORDS, "false")}
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_CENT = Decimal("0.01")
# ASCII digits only ('١٢٣' and '²' take the Decimal path), no sign, no exponent, no spaces.
_PLAIN_INTEGER = re.compile(r"[0-9]{1,18}")
_PLAIN_AMOUNT = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,2}))?")
# scheme://[userinfo@]host[:port][/path?query#fragment], no whitespace or control characters.
_URL = re.compile(r"(?i:https?)://(?:[^\s\x00-\x1f/?#@]+@)?[^\s\x00-\x1f/?#@:]+(?::\d{1,5})?(?:[/?#][^\s\x00-\x1f]*)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")
# A number's digits and exponent are bounded before anything costly: Decimal('1e1000000')
# is cheap, but its integer or plain text would take minutes and megabytes.
MAX_NUMBER_TEXT = 400
MAX_EXPONENT = 100


def to_text(value: Any) -> str:
    """Render any input value as text, integers without a spurious ``.0``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Unreadable):
        raise value.fail()
    if isinstance(value, list):
        return ",".join(to_text(v) for v in value if v is not None)
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


def to_decimal(value: Any, decimal: str = ".", thousands: str = "") -> Decimal:
    """Exact decimal of a number or numeric text; floats by their shortest repr.

    Text may use ``decimal`` as its decimal mark and any character of ``thousands``
    between digit groups (``1.234,50`` with ``decimal=","``, ``thousands=". "``).
    """
    if isinstance(value, bool):
        raise ConversionError("is not a number", value)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConversionError("is not a finite number", value)
        result = Decimal(repr(value))
    else:
        text = to_text(value).strip()
        if len(text) > MAX_NUMBER_TEXT:
            raise ConversionError(f"is not a number of at most {MAX_NUMBER_TEXT} characters", value)
        if thousands or decimal != ".":
            text = _unlocalise(text, decimal, thousands)
        if not _NUMBER_TEXT.fullmatch(text):
            raise ConversionError("is not a number", value)
        try:
            result = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise ConversionError("is not a number", value) from exc
    if not result.is_finite():
        raise ConversionError("is not a finite number", value)
    if result and not -MAX_EXPONENT <= result.adjusted() <= MAX_EXPONENT:
        raise ConversionError(f"is out of range (beyond 1e{MAX_EXPONENT} or 1e-{MAX_EXPONENT})", value)
    return result


def _unlocalise(text: str, decimal: str, thousands: str) -> str:
    """``1 234,50`` -> ``1234.50``; a thousands mark must sit between groups of 3 digits."""
    if thousands:
        grouped = re.fullmatch(rf"([+-]?\d{{1,3}})((?:[{re.escape(thousands)}]\d{{3}})+)(.*)", text, re.S)
        if grouped:
            text = grouped.group(1) + re.sub(rf"[{re.escape(thousands)}]", "", grouped.group(2)) + grouped.group(3)
    if decimal != "." and "." not in text:
        text = text.replace(decimal, ".", 1)
    return text


def _plain(number: Decimal) -> str:
    """Plain decimal notation: no exponent, integers without a fraction."""
    if number == number.to_integral_value():
        return str(int(number))
    return format(number, "f")


def convert_number(value: Any, decimal: str = ".", thousands: str = "") -> str:
    if type(value) is str and _PLAIN_INTEGER.fullmatch(value):  # the common case, without Decimal
        return str(int(value))
    return _plain(to_decimal(value, decimal, thousands))


def convert_money(value: Any, decimal: str = ".", thousands: str = "") -> str:
    if type(value) is str and decimal == "." and (plain := _PLAIN_AMOUNT.fullmatch(value)):
        # 12.5 -> 12.50, 007 -> 7.00: what quantizing gives, when there is nothing to round
        return f"{int(plain[1])}.{(plain[2] or '').ljust(2, '0')}"
    try:
        cents = to_decimal(value, decimal, thousands).quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:  # more digits than the decimal context holds
        raise ConversionError("is too large for Money", value) from exc
    return format(cents if cents else cents.copy_abs(), "f")  # -0.001 -> 0.00, not -0.00


def convert_string(value: Any) -> str:
    return to_text(value)


def boolean_words(true_values: tuple[str, ...] = (), false_values: tuple[str, ...] = ()) -> dict[str, str]:
    """Word -> wire value; given lists replace the default words of their side."""
    trues = {w.strip().lower() for w in true_values} or TRUE_WORDS
    falses = {w.strip().lower() for w in false_values} or FALSE_WORDS
    return {**dict.fromkeys(trues, "true"), **dict.fromkeys(falses, "false")}


def convert_boolean(value: Any, words: dict[str, str] | None = None) -> str:
    words = words or _BOOLEAN_WORDS
    if isinstance(value, bool):
        return "true" if value else "false"
    wire = words.get(to_text(value).strip().lower())
    if wire is not None:
        return wire
    raise ConversionError(f"is not a boolean ({'/'.join(sorted(words))})", value)


def convert_url(value: Any) -> str:
    text = to_text(value).strip()
    if not _URL.fullmatch(text):
        if _SPACE_OR_CONTROL.search(text):
            raise ConversionError("is not a valid URL (contains whitespace)", value)
        raise ConversionError("is not an absolute http(s) URL", value)
    return text


EXCEL = "excel"
EPOCH_UNITS = {"epoch_s": 1, "epoch_ms": 10**3, "epoch_us": 10**6, "epoch_ns": 10**9}
SPECIAL_FORMATS = (*EPOCH_UNITS, EXCEL)
_EXCEL_EPOCH = datetime(1899, 12, 30)


def parse_datetime(value: Any, formats: str | tuple[str, ...] | None = None) -> datetime:
    """A datetime from a typed value or text, trying ``formats`` in order (strptime
    patterns, or ``epoch_s``/``_ms``/``_us``/``_ns``, ``excel`` serial days); ISO 8601 without."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(formats, str):
        formats = (formats,)
    for fmt in formats or ("iso",):
        try:
            return _parse_one(value, fmt)
        except (ValueError, OverflowError, ArithmeticError, OSError):
            continue
    if formats:
        # A value that says its own offset is one moment whatever the field's formats
        # expect: the way out of an ambiguous local time.
        with contextlib.suppress(ValueError, TypeError):
            moment = datetime.fromisoformat(to_text(value).strip())
            if moment.tzinfo is not None:
                return moment
    expected = " or ".join(formats) if formats else "ISO 8601 (YYYY-MM-DD[THH:MM:SS][+zone])"
    raise ConversionError(f"does not match {'format ' if formats else ''}{expected}", value)


def format_problem(fmt: str) -> str | None:
    """Why ``fmt`` can never match a value (an unknown directive, a stray ``%``, no
    directive at all), else None: a mapping is checked before anything is sent."""
    if fmt in SPECIAL_FORMATS:
        return None
    if "%" not in fmt:
        return f"is not a format: no % directive (a strptime pattern, or one of {', '.join(SPECIAL_FORMATS)})"
    sample = datetime(2024, 12, 31, 23, 59, 58, tzinfo=UTC)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        return f"is not a usable strptime format ({exc})"
    return None


def _parse_one(value: Any, fmt: str) -> datetime:
    if fmt in SPECIAL_FORMATS:
        if fmt in EPOCH_UNITS:
            return datetime.fromtimestamp(float(to_decimal(value) / EPOCH_UNITS[fmt]), UTC)
        number = float(to_decimal(value))
        if not 0 < number < 2958466:  # Excel's last day is 9999-12-31
            raise ValueError("not an Excel serial date")
        return _EXCEL_EPOCH + timedelta(days=number)
    text = to_text(value).strip()
    if fmt == "iso":
        return datetime.fromisoformat(text)
    return datetime.strptime(text, fmt)


def convert_date(value: Any, formats: str | tuple[str, ...] | None = None, tz: tzinfo | None = None) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if not formats and isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass  # e.g. 2026-02-30: parse_datetime words the error
    moment = parse_datetime(value, formats)
    if moment.tzinfo is not None and tz is not None:
        try:
            moment = moment.astimezone(tz)  # an epoch is a moment: its day is the mapping zone's
        except (OverflowError, ValueError) as exc:
            raise ConversionError(f"is out of range in {tz}", value) from exc
    return moment.date().isoformat()


def convert_datetime(
    value: Any,
    formats: str | tuple[str, ...] | None = None,
    tz: tzinfo = UTC,
    ambiguous: str = "invalid",
    nonexistent: str = "invalid",
) -> str:
    moment = parse_datetime(value, formats)
    try:
        if moment.tzinfo is None:
            moment = localise(moment, tz, value, ambiguous, nonexistent)
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ConversionError("is out of range once converted to UTC (years 1000 to 9999)", value) from exc
    if moment.year < 1000:
        raise ConversionError("is out of range once converted to UTC (years 1000 to 9999)", value)
    return (
        f"{moment.year}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


AMBIGUOUS = ("invalid", "earlier", "later")
NONEXISTENT = ("invalid", "shift_forward")


def localise(
    moment: datetime, tz: tzinfo, value: Any = None, ambiguous: str = "invalid", nonexistent: str = "invalid"
) -> datetime:
    """A naive wall-clock time read in ``tz``. A time the clock passes twice (daylight
    saving ends) is the ``earlier`` or ``later`` of its two moments; a time the clock skips
    (it starts) is ``shift_forward``ed to the first moment after the gap (as pandas'
    ``tz_localize`` does); by default (``invalid``) both are refused, never shifted silently."""
    aware = moment.replace(tzinfo=tz)
    if tz is UTC or aware.utcoffset() == aware.replace(fold=1).utcoffset():
        return aware
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != moment:
        if nonexistent == "shift_forward":
            return _after_gap(moment, tz)
        raise ConversionError(
            f"does not exist in {tz} (the clock skips it when daylight saving time starts); give its UTC offset, "
            "or set nonexistent: shift_forward",
            value,
        )
    if ambiguous in ("earlier", "later"):
        return aware.replace(fold=0 if ambiguous == "earlier" else 1)
    raise ConversionError(
        f"is ambiguous in {tz} (the clock passes it twice when daylight saving time ends); give its UTC offset, "
        "or set ambiguous: earlier or later",
        value,
    )


def _after_gap(moment: datetime, tz: tzinfo) -> datetime:
    """The first second after the gap that ``moment`` (a wall time the clock skips) falls in."""
    before = moment.replace(tzinfo=tz, fold=1).astimezone(UTC)  # read with the offset after the gap
    after = moment.replace(tzinfo=tz, fold=0).astimezone(UTC)  # read with the offset before it
    low, high = min(before, after), max(before, after)  # the jump lies between the two readings
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= moment:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(tz)


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
