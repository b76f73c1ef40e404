"""Customer identifiers: email normalisation and hashing, phone E.164, ids.

Messages raised here never contain the raw email or phone: they end up in reports.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import phonenumbers

from importer import phones
from importer.convert import to_text
from importer.errors import ConversionError

EMAIL_MAX = 320
PHONE_MAX = phones.PHONE_MAX
CRM_ID_MAX = 128
_HEX = {32: re.compile(r"[0-9a-fA-F]{32}"), 64: re.compile(r"[0-9a-fA-F]{64}")}
_INTEGER = re.compile(r"[+]?[0-9]{1,19}")
# local@domain: no whitespace, control or delimiter characters (a 'mailto:' prefix, a
# display name, a list); the domain's labels are separated by single dots.
_ATOM = r"[^@\s\x00-\x1f\x7f\"(),:;<>\[\]\\]"
_EMAIL = re.compile(rf"{_ATOM}+@(?:[^@\s\x00-\x1f\x7f\"(),:;<>\[\]\\./]+\.)+[^@\s\x00-\x1f\x7f\"(),:;<>\[\]\\./]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE = re.compile(r"\s")
_INT64_MAX = 2**63 - 1


def normalise_email(value: Any) -> str:
    """Trim (Unicode ``strip``) and lowercase; reject what cannot be an address."""
    email = (value if type(value) is str else to_text(value)).strip().lower()
    if not _EMAIL.fullmatch(email):
        if email.count("@") != 1:
            raise ConversionError("not a valid email address (needs exactly one '@')")
        if _SPACE.search(email):
            raise ConversionError("not a valid email address (contains whitespace)")
        if _CONTROL.search(email):
            raise ConversionError("not a valid email address (contains control characters)")
        if email.startswith("mailto:"):
            raise ConversionError("not a valid email address (remove the 'mailto:' prefix)")
        raise ConversionError("not a valid email address")
    if len(email) > EMAIL_MAX:
        raise ConversionError(f"email longer than {EMAIL_MAX} characters")
    return email


def normalise_emails(values: Sequence[str]) -> list[str] | None:
    """``normalise_email`` of every text at once, or None when one of them fails (the
    caller then goes value by value, for the words of each problem)."""
    emails = list(map(str.lower, map(str.strip, values)))
    if all(map(_EMAIL.fullmatch, emails)) and max(map(len, emails), default=0) <= EMAIL_MAX:
        return emails
    return None


def md5_hex(email: str) -> str:
    return hashlib.md5(email.encode("utf-8"), usedforsecurity=False).hexdigest()


def sha256_hex(email: str) -> str:
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def check_hash(value: Any, length: int) -> str:
    """A column that already holds a hash: ``length`` hex digits, sent lowercase."""
    text = to_text(value).strip()
    if not _HEX[length].fullmatch(text):
        raise ConversionError(f"not a {length}-digit hex hash")
    return text.lower()


def to_e164(value: Any, default_region: str | None) -> str:
    """Parse a phone number (``+``/``00`` international, or national with a default
    region) into E.164."""
    result = _e164(to_text(value), default_region)
    if result.startswith("+"):
        return result
    raise ConversionError(result)


def to_e164s(values: Sequence[str], default_region: str | None) -> list[str] | None:
    """``to_e164`` of every text at once, or None when one of them fails.

    The common shapes (``+48 600 123 456``, ``600-123-456`` under PL) are recognised
    without a Python step per value: the separators are removed from the whole column in
    one ``translate``, and one ``fullmatch`` of a ``phones`` pattern tells whether
    every text is such a shape. Otherwise each text is tried alone, then by ``_e164``."""
    texts = list(map(str.strip, values))
    joined = "\n".join(texts).translate(phones.SEPARATORS)
    international = phones.international_pattern()
    national = phones.national_pattern(default_region)
    home = "+" + phones.country_code_of(default_region)
    if texts:
        bare = joined.split("\n")
        if len(bare) == len(texts):  # else a value holds a line break itself
            if phones.international_pattern(column=True).fullmatch(joined):
                return bare  # the column is its own answer
            column = phones.national_pattern(default_region, column=True)
            if column is not None and column.fullmatch(joined):
                return [home + text for text in bare]
    out: list[str] = []
    append = out.append
    for value, text in zip(values, texts, strict=True):
        text = text.translate(phones.SEPARATORS)
        if international.fullmatch(text):
            append(text)
        elif national is not None and national.fullmatch(text):
            append(home + text)
        else:
            text = _e164(value, default_region)
            if text[:1] != "+":
                return None
            append(text)
    return out


@functools.lru_cache(maxsize=1 << 16)
def _e164(raw: str, default_region: str | None) -> str:
    """The E.164 form, or the problem (text without a leading +). Cached on the raw value
    as read: exports repeat numbers (a cache keyed on a cleaned form would not be safe:
    cleaning changes what some values mean). The common shapes take ``phones.e164``'s
    few µs; the rest the 15–30 µs of phonenumbers' parse."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    return phones.e164(text, default_region) or _parse(text, default_region)


def _phone_reference(raw: str, default_region: str | None) -> str:
    """What ``_e164`` answers, by phonenumbers alone: the oracle the fast paths are held to
    (tests/test_phones.py, make bench)."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    return _parse(text, default_region)


def _parse(text: str, default_region: str | None) -> str:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            return "phone number has no country code and no default_region is set"
        return "not a phone number"
    if not phonenumbers.is_possible_number(number):
        return phones.WRONG_LENGTH
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) > PHONE_MAX:
        return phones.TOO_LONG
    return e164


def to_customer_id(value: Any) -> int:
    """ECDP's own customer id, sent as a JSON integer."""
    if isinstance(value, bool):
        raise ConversionError("customer id must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, (float, Decimal)):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        if not finite or value != int(value):
            raise ConversionError("customer id must be an integer")
        number = int(value)
    else:
        text = to_text(value).strip()
        if not _INTEGER.fullmatch(text):
            raise ConversionError("is not an integer customer id", text if len(text) <= 40 else text[:40])
        number = int(text)
    if not 0 <= number <= _INT64_MAX:
        raise ConversionError("customer id out of range")
    return number


def to_crm_ids(values: Sequence[str]) -> list[str] | None:
    """``to_crm_id`` of every text at once, or None when one of them fails."""
    ids = list(map(str.strip, values))
    return ids if max(map(len, ids), default=0) <= CRM_ID_MAX and "" not in ids else None


def to_crm_id(value: Any) -> str:
    text = to_text(value).strip()
    if not text:
        raise ConversionError("is empty once trimmed (the API refuses an empty CRM id)")
    if len(text) > CRM_ID_MAX:
        raise ConversionError(f"CRM id longer than {CRM_ID_MAX} characters")
    return text
