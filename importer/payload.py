"""Row -> request body, or the list of reasons the row is invalid.

A row is rendered whole: every problem of the row is reported, not just the first, and
an invalid row never produces a body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from importer.convert import CONVERTERS, convert_date, convert_datetime, shown
from importer.errors import ConversionError, MappingError
from importer.identity import (
    check_hash,
    md5_hex,
    normalise_email,
    sha256_hex,
    to_crm_id,
    to_customer_id,
    to_e164,
)
from importer.mapping import INT32_MAX, DataField, Identifier, Mapping
from importer.source import Row

BODY_KEYS = {
    "id": "customerId",
    "email": "customerEmail",
    "email_md5": "customerEmailMd5",
    "email_sha256": "customerEmailSha256",
    "phone": "customerPhone",
    "crm_id": "customerCrmId",
}
_SEGMENT_SPLIT = re.compile(r"[,;|]")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A row's request body (``None`` when invalid), its problems and its report ref."""

    body: dict[str, Any] | None
    errors: tuple[str, ...]
    customer_ref: str


def _positive_int32(value: Any, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not text.isdigit() or not 0 < int(text) <= INT32_MAX:
        raise ConversionError(f"{shown(value)} is not a valid {what}")
    return int(text)


@dataclass(frozen=True, slots=True)
class _IdentStep:
    column: str
    body_key: str
    label: str
    required: bool
    from_email: bool
    convert: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _FieldStep:
    column: str
    label: str
    required: bool
    name: str
    type: str
    convert: Callable[[Any], str]


_EMAIL_DERIVED: dict[str, Callable[[str], str]] = {
    "email": lambda email: email,
    "email_md5_of": md5_hex,
    "email_sha256_of": sha256_hex,
}


class PayloadBuilder:
    """Renders rows with one compiled mapping.

    The mapping is compiled once into flat steps (column, converter, labels), constants
    are converted once, and an email feeding several identifiers is normalised once per
    row: this is the per-row hot path.
    """

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self._idents = tuple(_ident_step(i) for i in mapping.identifiers)
        # In mapping order: a step per column field, the rendered item per constant.
        self._fields: list[_FieldStep | dict[str, str]] = []
        for i, df in enumerate(mapping.data_fields):
            convert = _converter(df, mapping)
            if df.column is None:
                try:
                    wire = convert(df.value)
                except ConversionError as exc:
                    raise MappingError(f"{mapping.source}: data_fields[{i}].value: {exc}") from exc
                self._fields.append({"name": df.name, "type": df.type, "value": wire})
            else:
                label = f"column {df.column!r} ({df.name})"
                self._fields.append(_FieldStep(df.column, label, df.required, df.name, df.type, convert))

    def render(self, row: Row) -> Rendered:
        errors: list[str] = [row.error] if row.error else []
        body: dict[str, Any] = {"customEventId": self._event_id(row, errors)}
        ref = ""
        if self.mapping.endpoint == "segments":
            body["segments"] = self._segments(row, errors)
        else:
            ref = self._customer(row.values, body, errors)
        fields = self._data_fields(row.values, errors)
        if fields:
            body["dataFields"] = fields
        if errors:
            return Rendered(None, tuple(errors), ref)
        return Rendered(body, (), ref)

    def _event_id(self, row: Row, errors: list[str]) -> int | None:
        col = self.mapping.event_id_column
        if col is None:
            return self.mapping.event_id
        value = row.values.get(col)
        if value is None:
            errors.append(f"column {col!r} (custom_event_id): empty")
            return None
        try:
            return _positive_int32(value, "custom event id")
        except ConversionError as exc:
            errors.append(f"column {col!r} (custom_event_id): {exc}")
            return None

    def _segments(self, row: Row, errors: list[str]) -> list[int]:
        col = self.mapping.segments_column
        if col is None:
            return list(self.mapping.segments or ())
        value = row.values.get(col)
        items = value if isinstance(value, list) else _SEGMENT_SPLIT.split(str(value or ""))
        try:
            ids = [_positive_int32(v, "segment id") for v in items if str(v).strip()]
        except ConversionError as exc:
            errors.append(f"column {col!r} (segments): {exc}")
            return []
        if not ids:
            errors.append(f"column {col!r} (segments): no segment ids")
        return ids

    def _customer(self, values: dict[str, Any], body: dict[str, Any], errors: list[str]) -> str:
        """Fill the identifiers into ``body``; return the report's customer_ref."""
        emails: dict[str, str | None] = {}
        failed = False
        for step in self._idents:
            value = values.get(step.column)
            if value is None:
                if step.required:
                    errors.append(f"column {step.column!r} ({step.label}): empty but required")
                continue
            try:
                if step.from_email:
                    if step.column not in emails:
                        emails[step.column] = None
                        emails[step.column] = normalise_email(value)
                    email = emails[step.column]
                    if email is None:
                        continue  # this email's problem is reported once
                    body[step.body_key] = step.convert(email)
                else:
                    body[step.body_key] = step.convert(value)
            except ConversionError as exc:
                failed = True
                errors.append(f"column {step.column!r} ({step.label}): {exc}")
        if not failed and len(body) == 1:
            errors.append("no customer identifier: every mapped identifier column is empty")
        return customer_ref(body)

    def _data_fields(self, values: dict[str, Any], errors: list[str]) -> list[dict[str, str]]:
        fields: list[dict[str, str]] = []
        for step in self._fields:
            if isinstance(step, dict):
                fields.append(step)
                continue
            value = values.get(step.column)
            if value is None:
                if step.required:
                    errors.append(f"{step.label}: empty but required")
                continue
            try:
                fields.append({"name": step.name, "type": step.type, "value": step.convert(value)})
            except ConversionError as exc:
                errors.append(f"{step.label}: {exc}")
        return fields


def _converter(df: DataField, mapping: Mapping) -> Callable[[Any], str]:
    if df.type == "DateTime":
        return partial(convert_datetime, fmt=df.format, tz=mapping.tz)
    if df.type == "Date":
        return partial(convert_date, fmt=df.format)
    return CONVERTERS[df.type]


def _ident_step(ident: Identifier) -> _IdentStep:
    label = f"customer.{ident.key}"
    from_email = ident.kind in _EMAIL_DERIVED
    convert: Callable[[Any], Any]
    if from_email:
        convert = _EMAIL_DERIVED[ident.kind]
    elif ident.kind == "email_md5":
        convert = partial(check_hash, length=32)
    elif ident.kind == "email_sha256":
        convert = partial(check_hash, length=64)
    elif ident.kind == "phone":
        convert = partial(to_e164, default_region=ident.default_region)
    elif ident.kind == "id":
        convert = to_customer_id
    else:
        convert = to_crm_id
    return _IdentStep(ident.column, BODY_KEYS[ident.key], label, ident.required, from_email, convert)


def customer_ref(body: dict[str, Any]) -> str:
    """CRM id, else customer id, else a short email hash; never a raw email or phone."""
    if "customerCrmId" in body:
        return str(body["customerCrmId"])
    if "customerId" in body:
        return str(body["customerId"])
    if "customerEmailSha256" in body:
        return "sha256:" + str(body["customerEmailSha256"])[:12]
    if "customerEmail" in body:
        return "sha256:" + sha256_hex(str(body["customerEmail"]))[:12]
    if "customerEmailMd5" in body:
        return "md5:" + str(body["customerEmailMd5"])[:12]
    return ""
