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

import re
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import yaml

from importer.convert import AMBIGUOUS, NONEXISTENT, TYPES, format_problem
from importer.errors import MAX_ECHO, MappingError, echo, masked
from importer.filters import Condition, compile_filter

INT32_MAX = 2**31 - 1
TOP_KEYS = (
    "endpoint", "custom_event_id", "timezone", "ambiguous", "nonexistent", "customer", "segments", "data_fields",
    "filter", "dedup",
)  # fmt: skip
CUSTOMER_KEYS = ("id", "email", "email_md5", "email_sha256", "phone", "crm_id")
FIELD_KEYS = (
    "name", "type", "column", "value", "required", "format",
    "decimal", "thousands", "true_values", "false_values", "timezone", "ambiguous", "nonexistent",
)  # fmt: skip
DATE_TYPES = ("Date", "DateTime")
NUMBER_TYPES = ("Number", "Money")
THOUSANDS_MARKS = ".,' \u00a0\u202f"
ENDPOINTS = {"customer": "/scenariocustomevents", "segments": "/scenariocustomevents/withsegments"}
MAX_NODES = 10_000  # a mapping is a few hundred nodes; more is an alias bomb
MAX_DEPTH = 20
MAX_TEXT = 256 * 1024  # characters: a mapping is a few kilobytes; a huge one is refused before parsing
_INT = re.compile(r"\+?[0-9]{1,10}")
_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")


class _Loader(yaml.SafeLoader):
    """YAML as the user wrote it: plain scalars stay text (PyYAML's YAML 1.1 reads
    ``NO`` as false, ``0123`` as 83 and ``1.10`` as 1.1); the checker converts each key
    explicitly. Only ``null``/``~``/empty and the ``<<`` merge key are recognised, and a
    key given twice is an error."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain word, not a list or mapping", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {echo(key)}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {}  # its own table: SafeLoader's is left as it is
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def parse_yaml(text: str, source: str = "mapping") -> Any:
    """Parse a mapping document: every plain scalar is a string (or None for null)."""
    if len(text) > MAX_TEXT:
        raise MappingError(
            f"{source}: {len(text):,} characters is not a mapping (a mapping is a few kilobytes; at most {MAX_TEXT:,})"
        )
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise MappingError(f"{source}: not valid YAML{where}: {problem}") from exc
    except RecursionError as exc:
        raise MappingError(f"{source}: nested too deeply to be a mapping") from exc
    _check_size(doc, source)
    return doc


def _check_size(doc: Any, source: str) -> None:
    """Refuse a document whose aliases expand past MAX_NODES, or nested past MAX_DEPTH,
    before any message could echo the expanded value."""
    stack = [(doc, 0)]
    nodes = 0
    while stack:
        obj, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise MappingError(f"{source}: too large once its aliases are expanded (over {MAX_NODES:,} values)")
        if depth > MAX_DEPTH:
            raise MappingError(f"{source}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for pair in obj.items() for v in pair)
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)


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
    ambiguous: str | None = None  # DateTime: a local time passed twice (None: the mapping's choice)
    nonexistent: str | None = None  # DateTime: a local time skipped (None: the mapping's choice)


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
    dedup: bool = True  # look each row's event up in the delivery ledger before sending
    dedup_key: tuple[str, ...] | None = None  # the columns naming an event; None: the whole body
    ambiguous: str = "invalid"  # naive date-times the clock passes twice: invalid, earlier or later
    nonexistent: str = "invalid"  # naive date-times the clock skips: invalid or shift_forward

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
        for i, column in enumerate(self.dedup_key or ()):
            used.setdefault(column, f"dedup.key[{i}]")
        return used

    def check_columns(self, input_name: str, columns: list[str]) -> None:
        """Raise MappingError naming every mapped column that ``columns`` lacks."""
        present = set(columns)
        missing = [f"column {echo(c)} ({where})" for c, where in self.columns().items() if c not in present]
        if missing:
            # A header may be a row of data (a file without one): quote it masked.
            header = [_cut(masked(c)) for c in columns[:30]]
            shown = ", ".join(header) + (", ..." if len(columns) > 30 else "")
            looks_like_data = any(masked(c) != c for c in columns[:30])
            hint = "; its first line looks like data: has the file no header row?" if looks_like_data else ""
            raise MappingError(
                f"{self.source}: {'; '.join(missing)} not found in {input_name} (its columns: {shown}){hint}"
            )


def _cut(text: str) -> str:
    """A header name for a message, cut to MAX_ECHO characters."""
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


def load_mapping(path: str) -> Mapping:
    """Read, check and compile a mapping file; MappingError lists every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MappingError(f"mapping file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc}") from exc
    return compile_mapping(parse_yaml(text, path), source=path)


def compile_mapping(doc: Any, source: str = "mapping") -> Mapping:
    """Check a parsed mapping document and compile it; MappingError lists every problem."""
    checker = _Checker()
    mapping = checker.mapping(doc, source)
    if checker.errors:
        raise MappingError(f"{source}: " + "; ".join(checker.errors))
    assert mapping is not None
    return mapping


class _Checker:
    """Walks the document once, collecting ``path: problem`` messages.

    Scalars arrive as text (see ``_Loader``) or, from Python callers, as their own types;
    each key converts its value explicitly, and a list or mapping where a scalar belongs
    is a problem, never a repr sent to the API.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def unknown_keys(self, path: str, obj: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in obj:
            if key not in allowed:
                name = str(key)[:MAX_ECHO]
                where = f"{path}.{name}" if path else name
                self.err(where, f"unknown key {echo(key)} (expected one of {', '.join(allowed)})")

    def text(self, path: str, value: Any, what: str = "a word or number") -> str | None:
        """A scalar as the text the user wrote; None (with a problem) for anything else."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        self.err(path, f"must be {what}, got {echo(value)}")
        return None

    def integer(self, path: str, value: Any, what: str = "a positive 32-bit integer") -> int | None:
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT32_MAX:
            self.err(path, f"must be {what}, got {echo(value)}")
            return None
        return value

    def mapping(self, doc: Any, source: str) -> Mapping | None:
        if not isinstance(doc, dict):
            self.err("mapping", "must be a YAML mapping of keys (endpoint, custom_event_id, ...)")
            return None
        self.unknown_keys("", doc, TOP_KEYS)
        endpoint = self.text("endpoint", doc.get("endpoint", "customer"), "customer or segments")
        if endpoint is not None and endpoint not in ENDPOINTS:
            self.err("endpoint", f"unknown endpoint {echo(endpoint)} (expected customer or segments)")
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
        ambiguous = self.choice("ambiguous", doc.get("ambiguous", "invalid"), AMBIGUOUS)
        nonexistent = self.choice("nonexistent", doc.get("nonexistent", "invalid"), NONEXISTENT)
        dedup, dedup_key = self.dedup(doc.get("dedup"), "dedup" in doc)
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
            dedup=dedup,
            dedup_key=dedup_key,
            ambiguous=ambiguous or "invalid",
            nonexistent=nonexistent or "invalid",
        )

    def choice(self, path: str, value: Any, allowed: tuple[str, ...]) -> str | None:
        if value not in allowed:
            self.err(path, f"must be one of {', '.join(allowed)}, got {echo(value)}")
            return None
        return str(value)

    def dedup(self, value: Any, given: bool) -> tuple[bool, tuple[str, ...] | None]:
        """``dedup: none``, ``dedup: {key: [COLUMN, ...]}``, or absent (the whole body)."""
        if not given:
            return True, None
        if value in ("none", "None", "NONE"):
            return False, None
        key = value.get("key") if isinstance(value, dict) else None
        if isinstance(value, dict):
            self.unknown_keys("dedup", value, ("key",))
        if isinstance(key, str):
            key = [key]
        if not isinstance(key, list) or not key or not all(isinstance(c, str) and c for c in key):
            self.err("dedup", "must be none, or {key: [COLUMN, ...]} naming the columns that identify an event")
            return True, None
        return True, tuple(key)

    def column_ref(self, path: str, obj: dict[str, Any]) -> str | None:
        col = obj.get("column")
        if isinstance(col, (int, float)) and not isinstance(col, bool):
            col = str(col)
        if not isinstance(col, str) or not col:
            self.err(path, "needs 'column: NAME'")
            return None
        return col

    def event_id(self, value: Any) -> tuple[int | None, str | None]:
        if isinstance(value, dict):
            self.unknown_keys("custom_event_id", value, ("column",))
            return None, self.column_ref("custom_event_id", value)
        if value is None:
            self.err("custom_event_id", "is required (an integer, or {column: NAME})")
            return None, None
        return self.integer("custom_event_id", value), None

    def timezone(self, name: Any, path: str = "timezone") -> tzinfo:
        if name is None:
            return UTC
        key = self.text(path, name, "a time zone name")
        if key is None:
            return UTC
        try:
            return ZoneInfo(key)
        except Exception:  # not found, a directory, too long, not a normalised path
            self.err(path, f"unknown time zone {echo(key)} (e.g. Europe/Warsaw, UTC)")
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
        if isinstance(spec, (str, int)) and not isinstance(spec, bool) and str(spec):
            return Identifier(key, key, str(spec))
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
        if region is not None:
            region = self.text(f"{path}.default_region", region, "a two-letter region code like PL")
            if region is not None and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                self.err(f"{path}.default_region", f"must be a two-letter region code like PL, got {echo(region)}")
                region = None
        if col is None:
            return None
        return Identifier(key, key, col, required, region.upper() if region else None)

    def flag(self, path: str, value: Any) -> bool:
        if value in _TRUE or value is True:
            return True
        if value in _FALSE or value is False:
            return False
        self.err(path, f"must be true or false, got {echo(value)}")
        return False

    def segments(self, value: Any) -> tuple[tuple[int, ...] | None, str | None]:
        if isinstance(value, dict):
            self.unknown_keys("segments", value, ("column",))
            return None, self.column_ref("segments", value)
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value:
            self.err("segments", "needs a list of segment ids, or {column: NAME}")
            return None, None
        ids = [self.integer(f"segments[{i}]", item) for i, item in enumerate(value)]
        return tuple(i for i in ids if i is not None), None

    def data_fields(self, value: Any) -> tuple[DataField, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.err("data_fields", "must be a list of {name, type, column | value}")
            return ()
        fields = [self.data_field(f"data_fields[{i}]", item) for i, item in enumerate(value)]
        names = [f.name for f in fields if f]
        for name in sorted({n for n in names if names.count(n) > 1}):
            self.err("data_fields", f"field name {echo(name)} appears more than once")
        return tuple(f for f in fields if f)

    def data_field(self, path: str, item: Any) -> DataField | None:
        if not isinstance(item, dict):
            self.err(path, "must be {name, type, column | value}")
            return None
        self.unknown_keys(path, item, FIELD_KEYS)
        errors_before = len(self.errors)
        name = self.text(f"{path}.name", item.get("name"), "the field's name") if "name" in item else None
        if not name:
            self.err(f"{path}.name", "is required")
        ftype = item.get("type")
        if not isinstance(ftype, str) or ftype not in TYPES:
            shown = "is required" if ftype is None else f"unknown type {echo(ftype)}"
            self.err(f"{path}.type", f"{shown} (expected one of {', '.join(TYPES)})")
        value = None
        if ("column" in item) == ("value" in item):
            self.err(path, "needs exactly one of 'column' or 'value'")
        elif "column" in item:
            self.column_ref(f"{path}.column", item)
        elif item["value"] is None:
            self.err(f"{path}.value", "is empty (null); quote it ('null') to send the word, or remove the field")
        else:
            value = self.text(f"{path}.value", item["value"], "one value (a word, number or date)")
        required = self.flag(f"{path}.required", item.get("required", False))
        options = self.field_options(path, item, ftype)
        if len(self.errors) > errors_before or not name or not isinstance(ftype, str):
            return None
        column = None if "value" in item else str(item["column"])
        return DataField(name, ftype, column, value, required, **options)

    def formats(self, path: str, fmt: Any) -> tuple[str, ...] | None:
        formats = [fmt] if isinstance(fmt, str) else fmt
        hint = (
            "is a strptime format, or a list of them tried in order (also epoch_s, epoch_ms, epoch_us, epoch_ns, excel)"
        )
        if not isinstance(formats, list) or not formats or not all(isinstance(f, str) and f for f in formats):
            self.err(path, hint)
            return None
        for f in formats:
            problem = format_problem(f)
            if problem:
                self.err(path, f"{echo(f)} {problem}")
        return tuple(formats)

    def field_options(self, path: str, item: dict[str, Any], ftype: Any) -> dict[str, Any]:
        """The type-specific options of a data field, each checked against its type."""
        options: dict[str, Any] = {}
        allowed = {
            "format": DATE_TYPES, "timezone": DATE_TYPES, "decimal": NUMBER_TYPES, "thousands": NUMBER_TYPES,
            "true_values": ("Boolean",), "false_values": ("Boolean",), "ambiguous": ("DateTime",),
            "nonexistent": ("DateTime",),
        }  # fmt: skip
        for key, types in allowed.items():
            if key in item and ftype not in types:
                self.err(f"{path}.{key}", f"applies to {' and '.join(types)} fields only")
        if "format" in item:
            formats = self.formats(f"{path}.format", item["format"])
            if formats:
                options["formats"] = formats
        if "timezone" in item:
            options["tz"] = self.timezone(item["timezone"], f"{path}.timezone")
        for key, allowed_words in (("ambiguous", AMBIGUOUS), ("nonexistent", NONEXISTENT)):
            if key in item:
                options[key] = self.choice(f"{path}.{key}", item[key], allowed_words)
        decimal = item.get("decimal", ".")
        if decimal not in (".", ","):
            self.err(f"{path}.decimal", f"must be '.' or ',', got {echo(decimal)}")
            decimal = "."
        options["decimal"] = decimal
        thousands = item.get("thousands", ". \u00a0\u202f" if decimal == "," else "")
        if not isinstance(thousands, str) or any(c not in THOUSANDS_MARKS for c in thousands) or decimal in thousands:
            self.err(f"{path}.thousands", f"must be marks among {THOUSANDS_MARKS!r} other than the decimal mark")
        else:
            options["thousands"] = thousands
        for key in ("true_values", "false_values"):
            if key in item:
                words = item[key]
                texts = [self.text(f"{path}.{key}", w) for w in words] if isinstance(words, list) else []
                if not texts:
                    self.err(f"{path}.{key}", "must be a list of words")
                elif None not in texts:
                    options[key] = tuple(str(w).strip().lower() for w in texts)
        return options
