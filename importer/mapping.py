"""The YAML column mapping: load it, check it (every problem at once, with its path),
and compile it into a typed, immutable ``Mapping``.

Format (see README "Mapping reference")::

    endpoint: customer | segments
    custom_event_id: 4242 | {column: NAME}
    timezone: Europe/Warsaw
    customer: {id|email|email_md5|email_sha256|phone|crm_id: COLUMN | {column: ..., ...}}
    segments: [1, 5] | {column: NAME}
    data_fields: [{name, type, column | value, required, format}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from importer.convert import TYPES
from importer.errors import MappingError
from importer.filters import Condition, compile_filter

INT32_MAX = 2**31 - 1
TOP_KEYS = ("endpoint", "custom_event_id", "timezone", "customer", "segments", "data_fields", "filter")
CUSTOMER_KEYS = ("id", "email", "email_md5", "email_sha256", "phone", "crm_id")
FIELD_KEYS = (
    "name", "type", "column", "value", "required", "format",
    "decimal", "thousands", "true_values", "false_values", "timezone",
)  # fmt: skip
DATE_TYPES = ("Date", "DateTime")
NUMBER_TYPES = ("Number", "Money")
THOUSANDS_MARKS = ".,' \u00a0\u202f"
ENDPOINTS = {"customer": "/scenariocustomevents", "segments": "/scenariocustomevents/withsegments"}


@dataclass(frozen=True, slots=True)
class Identifier:
    """One customer identifier: where it comes from and how it is converted.

    ``kind`` is the key (``email``, ``phone``, ...) or ``email_md5_of``/``email_sha256_of``
    for a hash computed from an email column.
    """

    key: str
    kind: str
    column: str
    required: bool = False
    default_region: str | None = None


@dataclass(frozen=True, slots=True)
class DataField:
    """One data field; the options after ``required`` apply to some types only."""

    name: str
    type: str
    column: str | None = None
    value: Any = None
    required: bool = False
    formats: tuple[str, ...] = ()
    decimal: str = "."
    thousands: str = ""
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    tz: tzinfo | None = None


@dataclass(frozen=True, slots=True)
class Mapping:
    endpoint: str
    event_id: int | None
    event_id_column: str | None
    tz: tzinfo
    identifiers: tuple[Identifier, ...]
    segments: tuple[int, ...] | None
    segments_column: str | None
    data_fields: tuple[DataField, ...]
    source: str = field(default="mapping")
    filters: tuple[Condition, ...] = ()

    @property
    def path(self) -> str:
        return ENDPOINTS[self.endpoint]

    def columns(self) -> dict[str, str]:
        """Every input column the mapping reads -> the mapping path that names it."""
        used: dict[str, str] = {}
        if self.event_id_column:
            used.setdefault(self.event_id_column, "custom_event_id.column")
        for ident in self.identifiers:
            used.setdefault(ident.column, f"customer.{ident.key}")
        if self.segments_column:
            used.setdefault(self.segments_column, "segments.column")
        for i, df in enumerate(self.data_fields):
            if df.column is not None:
                used.setdefault(df.column, f"data_fields[{i}] ({df.name})")
        for i, condition in enumerate(self.filters):
            used.setdefault(condition.column, f"filter[{i}]")
        return used

    def check_columns(self, input_name: str, columns: list[str]) -> None:
        """Raise MappingError naming every mapped column that ``columns`` lacks."""
        present = set(columns)
        missing = [f"column {c!r} ({where})" for c, where in self.columns().items() if c not in present]
        if missing:
            shown = ", ".join(columns[:30]) + (", ..." if len(columns) > 30 else "")
            raise MappingError(f"{self.source}: {'; '.join(missing)} not found in {input_name} (its columns: {shown})")


def load_mapping(path: str) -> Mapping:
    """Read, check and compile a mapping file; MappingError lists every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MappingError(f"mapping file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise MappingError(f"{path}: not valid YAML{where}: {problem}") from exc
    return compile_mapping(doc, source=path)


def compile_mapping(doc: Any, source: str = "mapping") -> Mapping:
    """Check a parsed mapping document and compile it; MappingError lists every problem."""
    checker = _Checker()
    mapping = checker.mapping(doc, source)
    if checker.errors:
        raise MappingError(f"{source}: " + "; ".join(checker.errors))
    assert mapping is not None
    return mapping


class _Checker:
    """Walks the document once, collecting ``path: problem`` messages."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def unknown_keys(self, path: str, obj: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in obj:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.err(where, f"unknown key {key!r} (expected one of {', '.join(allowed)})")

    def mapping(self, doc: Any, source: str) -> Mapping | None:
        if not isinstance(doc, dict):
            self.err("mapping", "must be a YAML mapping of keys (endpoint, custom_event_id, ...)")
            return None
        self.unknown_keys("", doc, TOP_KEYS)
        endpoint = doc.get("endpoint", "customer")
        if endpoint not in ENDPOINTS:
            self.err("endpoint", f"unknown endpoint {endpoint!r} (expected customer or segments)")
        event_id, event_col = self.event_id(doc.get("custom_event_id"))
        identifiers: tuple[Identifier, ...] = ()
        segments: tuple[int, ...] | None = None
        segments_col = None
        if endpoint == "segments":
            if "customer" in doc:
                self.err("customer", "not allowed with endpoint segments")
            segments, segments_col = self.segments(doc.get("segments"))
        else:
            if "segments" in doc:
                self.err("segments", "only allowed with endpoint segments")
            identifiers = self.customer(doc.get("customer"))
        fields = self.data_fields(doc.get("data_fields", []))
        tz = self.timezone(doc.get("timezone"))
        return Mapping(
            endpoint=endpoint if endpoint in ENDPOINTS else "customer",
            event_id=event_id,
            event_id_column=event_col,
            tz=tz,
            identifiers=identifiers,
            segments=segments,
            segments_column=segments_col,
            data_fields=fields,
            source=source,
            filters=compile_filter(doc.get("filter"), self.err, tz),
        )

    def column_ref(self, path: str, obj: dict[str, Any]) -> str | None:
        col = obj.get("column")
        if not isinstance(col, str) or not col:
            self.err(path, "needs 'column: NAME'")
            return None
        return col

    def event_id(self, value: Any) -> tuple[int | None, str | None]:
        if isinstance(value, dict):
            self.unknown_keys("custom_event_id", value, ("column",))
            return None, self.column_ref("custom_event_id", value)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if value is None:
            self.err("custom_event_id", "is required (an integer, or {column: NAME})")
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT32_MAX:
            self.err("custom_event_id", f"must be a positive 32-bit integer, got {value!r}")
        else:
            return value, None
        return None, None

    def timezone(self, name: Any, path: str = "timezone") -> tzinfo:
        if name is None:
            return UTC
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            self.err(path, f"unknown time zone {name!r} (e.g. Europe/Warsaw, UTC)")
            return UTC

    def customer(self, section: Any) -> tuple[Identifier, ...]:
        if not isinstance(section, dict) or not section:
            self.err("customer", "needs at least one identifier (id, email, email_md5, email_sha256, phone, crm_id)")
            return ()
        self.unknown_keys("customer", section, CUSTOMER_KEYS)
        email_col = section.get("email")
        email_col = email_col.get("column") if isinstance(email_col, dict) else email_col
        out = []
        for key in CUSTOMER_KEYS:
            if key in section:
                ident = self.identifier(key, section[key], email_col)
                if ident:
                    out.append(ident)
        return tuple(out)

    def identifier(self, key: str, spec: Any, email_col: Any) -> Identifier | None:
        path = f"customer.{key}"
        if isinstance(spec, str) and spec:
            return Identifier(key, key, spec)
        if not isinstance(spec, dict):
            self.err(path, "must be a column name or {column: NAME, ...}")
            return None
        allowed = ["column", "required"]
        if key == "phone":
            allowed.append("default_region")
        if key in ("email_md5", "email_sha256"):
            allowed.append("hash_of")
        self.unknown_keys(path, spec, tuple(allowed))
        required = self.flag(f"{path}.required", spec.get("required", False))
        if "hash_of" in spec:
            source = spec["hash_of"]
            if not isinstance(source, str) or not source:
                self.err(f"{path}.hash_of", "must name the email column")
                return None
            # `hash_of: email` means the customer email's column when one is mapped.
            if source == "email" and isinstance(email_col, str):
                source = email_col
            return Identifier(key, f"{key}_of", source, required)
        col = self.column_ref(path, spec)
        region = spec.get("default_region")
        if region is not None and (not isinstance(region, str) or len(region) != 2):
            self.err(f"{path}.default_region", f"must be a two-letter region code like PL, got {region!r}")
            region = None
        if col is None:
            return None
        return Identifier(key, key, col, required, region.upper() if region else None)

    def flag(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.err(path, f"must be true or false, got {value!r}")
            return False
        return value

    def segments(self, value: Any) -> tuple[tuple[int, ...] | None, str | None]:
        if isinstance(value, dict):
            self.unknown_keys("segments", value, ("column",))
            return None, self.column_ref("segments", value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value:
            self.err("segments", "needs a list of segment ids, or {column: NAME}")
            return None, None
        ids = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= INT32_MAX:
                self.err(f"segments[{i}]", f"must be a positive 32-bit integer, got {item!r}")
            else:
                ids.append(item)
        return tuple(ids), None

    def data_fields(self, value: Any) -> tuple[DataField, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.err("data_fields", "must be a list of {name, type, column | value}")
            return ()
        fields = [self.data_field(f"data_fields[{i}]", item) for i, item in enumerate(value)]
        names = [f.name for f in fields if f]
        for name in sorted({n for n in names if names.count(n) > 1}):
            self.err("data_fields", f"field name {name!r} appears more than once")
        return tuple(f for f in fields if f)

    def data_field(self, path: str, item: Any) -> DataField | None:
        if not isinstance(item, dict):
            self.err(path, "must be {name, type, column | value}")
            return None
        self.unknown_keys(path, item, FIELD_KEYS)
        name, ftype = item.get("name"), item.get("type")
        errors_before = len(self.errors)
        if not isinstance(name, str) or not name:
            self.err(f"{path}.name", "is required")
        if ftype not in TYPES:
            shown = "is required" if ftype is None else f"unknown type {ftype!r}"
            self.err(f"{path}.type", f"{shown} (expected one of {', '.join(TYPES)})")
        if ("column" in item) == ("value" in item):
            self.err(path, "needs exactly one of 'column' or 'value'")
        elif "column" in item and not (isinstance(item["column"], str) and item["column"]):
            self.err(f"{path}.column", "must be a column name")
        required = self.flag(f"{path}.required", item.get("required", False))
        options = self.field_options(path, item, ftype)
        if len(self.errors) > errors_before or not isinstance(name, str) or not isinstance(ftype, str):
            return None
        return DataField(name, ftype, item.get("column"), item.get("value"), required, **options)

    def field_options(self, path: str, item: dict[str, Any], ftype: Any) -> dict[str, Any]:
        """The type-specific options of a data field, each checked against its type."""
        options: dict[str, Any] = {}
        allowed = {
            "format": DATE_TYPES, "timezone": DATE_TYPES, "decimal": NUMBER_TYPES, "thousands": NUMBER_TYPES,
            "true_values": ("Boolean",), "false_values": ("Boolean",),
        }  # fmt: skip
        for key, types in allowed.items():
            if key in item and ftype not in types:
                self.err(f"{path}.{key}", f"applies to {' and '.join(types)} fields only")
        if "format" in item:
            fmt = item["format"]
            formats = [fmt] if isinstance(fmt, str) else fmt
            if not isinstance(formats, list) or not formats or not all(isinstance(f, str) and f for f in formats):
                self.err(
                    f"{path}.format",
                    "is a strptime format, or a list of them tried in order (also epoch_s, epoch_ms, excel)",
                )
            else:
                options["formats"] = tuple(formats)
        if "timezone" in item:
            options["tz"] = self.timezone(item["timezone"], f"{path}.timezone")
        decimal = item.get("decimal", ".")
        if decimal not in (".", ","):
            self.err(f"{path}.decimal", f"must be '.' or ',', got {decimal!r}")
        else:
            options["decimal"] = decimal
        thousands = item.get("thousands", ". \u00a0\u202f" if decimal == "," else "")
        if not isinstance(thousands, str) or any(c not in THOUSANDS_MARKS for c in thousands) or decimal in thousands:
            self.err(f"{path}.thousands", f"must be marks among {THOUSANDS_MARKS!r} other than the decimal mark")
        else:
            options["thousands"] = thousands
        for key in ("true_values", "false_values"):
            if key in item:
                words = item[key]
                if not isinstance(words, list) or not words:
                    self.err(f"{path}.{key}", "must be a list of words")
                else:
                    options[key] = tuple(str(w).strip().lower() for w in words)
        return options
