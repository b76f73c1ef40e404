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

from importer.convert import CONVERTERS, boolean_words, convert_boolean, convert_date, convert_datetime, to_text
from importer.errors import ConversionError, MappingError, echo, shown
from importer.filters import FilterValueError, skip_reason
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
_ID = re.compile(r"\+?[0-9]{1,10}")  # ASCII digits: '²' and '①' pass isdigit() but are no ids


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a row is invalid: where (a column and its mapping key), what kind of
    problem (without the value, so that problems group), and the value when showable."""

    where: str
    kind: str
    value: Any = None

    def __str__(self) -> str:
        what = self.kind if self.value is None else f"{shown(self.value)} {self.kind}"
        return f"{self.where}: {what}" if self.where else what


@dataclass(frozen=True, slots=True)
class Rendered:
    """A row's request body (``None`` when invalid or skipped), its problems, the reason
    a filter skipped it, and its report ref."""

    body: dict[str, Any] | None
    errors: tuple[Problem, ...]
    customer_ref: str
    skipped: str | None = None

    @property
    def status(self) -> str:
        """``valid``, ``skipped`` (by a filter) or ``invalid``."""
        if self.body is not None:
            return "valid"
        return "skipped" if self.skipped else "invalid"

    @property
    def detail(self) -> str:
        return self.skipped or "; ".join(map(str, self.errors))


def positive_int32(value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = to_text(value).strip()
    if not _ID.fullmatch(text) or not 0 < int(text) <= INT32_MAX:
        raise ConversionError(f"is not a valid {what}", value)
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
        self.idents = tuple(_ident_step(i) for i in mapping.identifiers)
        # In mapping order: a step per column field, the rendered item per constant.
        self.fields: list[_FieldStep | dict[str, str]] = []
        for i, df in enumerate(mapping.data_fields):
            convert = _converter(df, mapping)
            if df.column is None:
                try:
                    wire = convert(df.value)
                except ConversionError as exc:
                    raise MappingError(f"{mapping.source}: data_fields[{i}].value: {exc}") from exc
                self.fields.append({"name": df.name, "type": df.type, "value": wire})
            else:
                label = f"column {echo(df.column)} ({df.name})"
                self.fields.append(_FieldStep(df.column, label, df.required, df.name, df.type, convert))

    def render(self, row: Row) -> Rendered:
        if self.mapping.filters:
            try:
                reason = skip_reason(self.mapping.filters, row.values, self.mapping.tz)
            except FilterValueError as exc:
                return Rendered(None, (Problem(f"column {echo(exc.column)} (filter)", exc.problem, exc.value),), "")
            if reason:
                return Rendered(None, (), "", reason)
        errors: list[Problem] = [Problem("", row.error)] if row.error else []
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

    def _event_id(self, row: Row, errors: list[Problem]) -> int | None:
        col = self.mapping.event_id_column
        if col is None:
            return self.mapping.event_id
        value = row.values.get(col)
        if value is None:
            errors.append(Problem(f"column {echo(col)} (custom_event_id)", "empty"))
            return None
        try:
            return positive_int32(value, "custom event id")
        except ConversionError as exc:
            errors.append(Problem(f"column {echo(col)} (custom_event_id)", exc.problem, exc.value))
            return None

    def _segments(self, row: Row, errors: list[Problem]) -> list[int]:
        col = self.mapping.segments_column
        if col is None:
            return list(self.mapping.segments or ())
        value = row.values.get(col)
        items = value if isinstance(value, list) else _SEGMENT_SPLIT.split(str(value or ""))
        try:
            ids = [positive_int32(v, "segment id") for v in items if str(v).strip()]
        except ConversionError as exc:
            errors.append(Problem(f"column {echo(col)} (segments)", exc.problem, exc.value))
            return []
        if not ids:
            errors.append(Problem(f"column {echo(col)} (segments)", "no segment ids"))
        return ids

    def _customer(self, values: dict[str, Any], body: dict[str, Any], errors: list[Problem]) -> str:
        """Fill the identifiers into ``body``; return the report's customer_ref."""
        emails: dict[str, str | None] = {}
        failed = False
        for step in self.idents:
            value = values.get(step.column)
            if value is None:
                if step.required:
                    errors.append(Problem(f"column {echo(step.column)} ({step.label})", "empty but required"))
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
                errors.append(Problem(f"column {echo(step.column)} ({step.label})", exc.problem, exc.value))
        if not failed and len(body) == 1:
            errors.append(Problem("", "no customer identifier: every mapped identifier column is empty"))
        return customer_ref(body)

    def _data_fields(self, values: dict[str, Any], errors: list[Problem]) -> list[dict[str, str]]:
        fields: list[dict[str, str]] = []
        for step in self.fields:
            if isinstance(step, dict):
                fields.append(step)
                continue
            value = values.get(step.column)
            if value is None:
                if step.required:
                    errors.append(Problem(step.label, "empty but required"))
                continue
            try:
                fields.append({"name": step.name, "type": step.type, "value": step.convert(value)})
            except ConversionError as exc:
                errors.append(Problem(step.label, exc.problem, exc.value))
        return fields


def _converter(df: DataField, mapping: Mapping) -> Callable[[Any], str]:
    if df.type == "DateTime":
        return partial(
            convert_datetime,
            formats=df.formats,
            tz=df.tz or mapping.tz,
            ambiguous=df.ambiguous or mapping.ambiguous,
            nonexistent=df.nonexistent or mapping.nonexistent,
        )
    if df.type == "Date":
        return partial(convert_date, formats=df.formats, tz=df.tz or mapping.tz)
    if df.type in ("Number", "Money") and (df.decimal != "." or df.thousands):
        return partial(CONVERTERS[df.type], decimal=df.decimal, thousands=df.thousands)
    if df.type == "Boolean" and (df.true_values or df.false_values):
        return partial(convert_boolean, words=boolean_words(df.true_values, df.false_values))
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
