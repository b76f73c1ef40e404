"""Row -> request body, or the list of reasons the row is invalid.

A row is rendered whole: every problem of the row is reported, not just the first, and
an invalid row never produces a body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from importer.convert import CONVERTERS, convert_datetime, shown
from importer.errors import ConversionError
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


class PayloadBuilder:
    """Renders rows with one compiled mapping."""

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping

    def render(self, row: Row) -> Rendered:
        errors: list[str] = [row.error] if row.error else []
        body: dict[str, Any] = {"customEventId": self._event_id(row, errors)}
        ref = ""
        if self.mapping.endpoint == "segments":
            body["segments"] = self._segments(row, errors)
        else:
            ref = self._customer(row, body, errors)
        fields = [f for f in (self._field(df, row, errors) for df in self.mapping.data_fields) if f]
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

    def _customer(self, row: Row, body: dict[str, Any], errors: list[str]) -> str:
        """Fill the identifiers into ``body``; return the report's customer_ref."""
        for ident in self.mapping.identifiers:
            value = row.values.get(ident.column)
            if value is None:
                if ident.required:
                    errors.append(f"column {ident.column!r} (customer.{ident.key}): empty but required")
                continue
            try:
                body[BODY_KEYS[ident.key]] = _identifier(ident, value)
            except ConversionError as exc:
                errors.append(f"column {ident.column!r} (customer.{ident.key}): {exc}")
        if not any(k in body for k in BODY_KEYS.values()) and not errors:
            errors.append("no customer identifier: every mapped identifier column is empty")
        return customer_ref(body)

    def _field(self, df: DataField, row: Row, errors: list[str]) -> dict[str, str] | None:
        value = df.value if df.column is None else row.values.get(df.column)
        where = f"column {df.column!r} ({df.name})" if df.column else f"constant {df.name}"
        if value is None or (isinstance(value, str) and not value.strip()):
            if df.required:
                errors.append(f"{where}: empty but required")
            return None
        try:
            if df.type == "DateTime":
                wire = convert_datetime(value, fmt=df.format, tz=self.mapping.tz)
            else:
                wire = CONVERTERS[df.type](value, fmt=df.format)
        except ConversionError as exc:
            errors.append(f"{where}: {exc}")
            return None
        return {"name": df.name, "type": df.type, "value": wire}


def _identifier(ident: Identifier, value: Any) -> Any:
    kind = ident.kind
    if kind == "email":
        return normalise_email(value)
    if kind == "email_md5_of":
        return md5_hex(normalise_email(value))
    if kind == "email_sha256_of":
        return sha256_hex(normalise_email(value))
    if kind == "email_md5":
        return check_hash(value, 32)
    if kind == "email_sha256":
        return check_hash(value, 64)
    if kind == "phone":
        return to_e164(value, ident.default_region)
    if kind == "id":
        return to_customer_id(value)
    return to_crm_id(value)


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
