"""``init-mapping``: a commented starter mapping guessed from a file's header and a sample.

Identifiers are recognised by column name and by content; every other column gets the
narrowest type that *every* sampled value fits (so ``validate`` works on the same file
without edits), with the input format it detected and a comment saying how many sampled
values matched.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from itertools import islice
from typing import Any

import phonenumbers
from phonenumbers import timezone as phone_zones

from importer.convert import (
    boolean_words,
    convert_boolean,
    convert_date,
    convert_datetime,
    convert_number,
    convert_url,
    to_text,
)
from importer.errors import ConversionError, shown
from importer.identity import check_hash, normalise_email
from importer.source import Source

SAMPLE_ROWS = 1000
IDENTIFIER_SHARE = 0.9  # of sampled values that must look like the identifier
TYPE_SHARE = 0.95  # of sampled values that must convert to the proposed type
DATE_FORMATS = (
    "%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d", "%b %d %Y", "%d %b %Y",
)  # fmt: skip
DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%b %d %Y %H:%M:%S", "%b %d %Y %H:%M",
)  # fmt: skip
# Day-first and month-first twins: the sample decides between them (a part over 12).
SWAPPED = {"%d/%m/%Y": "%m/%d/%Y", "%m/%d/%Y": "%d/%m/%Y"}
PHONE_REGIONS = ("US", "GB", "DE", "FR", "PL")
MONEY_WORDS = frozenset(
    {"price", "amount", "total", "revenue", "cost", "sum", "net", "gross", "tax", "fee", "spend", "budget",
     "payment", "subtotal", "discount", "refund", "balance", "kwota", "cena", "wartosc"}
)  # fmt: skip
NOT_MONEY_WORDS = frozenset(
    {"year", "date", "day", "month", "count", "qty", "quantity", "id", "number", "no", "num", "pct", "percent",
     "rate", "ratio", "code", "score", "rank", "age", "days", "hours", "items"}
)  # fmt: skip
BOOLEAN_NAME = re.compile(
    r"^(is|has|can|was|did|should)_|flag|active|enabled|consent|opt_?in|subscribed|verified|agree"
)
THOUSANDS_US = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
TEXT_ID_HINT = re.compile(r"(^|_)(id|code|zip|postal|postcode|sku|ean|nip|pesel|iban)($|_)")
PHONE_HINT = re.compile(r"phone|tel|mobile|msisdn|gsm|cell")
CRM_HINT = re.compile(r"crm|external|customer_?(id|no|number|code)|client_?(id|no|number)|user_?id|member|loyalty")
ECDP_ID_HINT = re.compile(r"^(ecdp|cdp)_?(customer_?)?id$")
SEGMENT_LIST = re.compile(r"\d+(\s*[,;|]\s*\d+)*")
ORDER_ID_HINT = re.compile(
    r"order_?(id|no|nr|number|num)|^(nr|numer)_?zam|zamowieni|transaction_?id|invoice_?(id|no|nr|number)|"
    r"bestell_?(nr|nummer)|commande|pedido"
)
OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
# Yes/no words of common export languages: suggested as true_values/false_values.
YES_NO = (("tak", "nie"), ("ja", "nein"), ("oui", "non"), ("si", "no"), ("sí", "no"), ("ano", "ne"), ("da", "nu"))
_TRANSLITERATION = str.maketrans(
    {"ł": "l", "Ł": "L", "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "đ": "d", "Đ": "D", "ð": "d",
     "þ": "th", "œ": "oe", "Œ": "OE", "ı": "i"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Guess:
    """A column's proposed entry: the YAML flow text and the comment that explains it."""

    yaml: str
    comment: str


def scaffold(source: Source, endpoint: str = "customer", event_id: int | None = None, sample: int = SAMPLE_ROWS) -> str:
    """The starter mapping for ``source`` as commented YAML text."""
    rows = [row.values for row in islice(source.rows(), sample)]
    columns = {c: [r[c] for r in rows if r.get(c) is not None] for c in source.columns}
    lines = [
        f"# Starter mapping for {source.name}, written by `ecdp-import init-mapping` from {len(rows):,} sampled rows.",
        f"# Check every guess, then: ecdp-import validate {source.name} --mapping THIS_FILE",
        f"endpoint: {endpoint}",
    ]
    if event_id is None:
        lines.append("custom_event_id: 1  # TODO: your custom event id (Automation > Scenarios > Custom events)")
    else:
        lines.append(f"custom_event_id: {event_id}")
    used: set[str] = set()
    head = _segments(columns, used) if endpoint == "segments" else _customer(columns, used)
    fields = ["data_fields:"]
    names: set[str] = set()
    naive = False
    for column, values in columns.items():
        if column in used:
            continue
        guess = guess_field(column, values, _field_name(column, names))
        fields.append(f"  - {guess.yaml}  # {guess.comment}")
        naive = naive or ("type: DateTime" in guess.yaml and _naive(values))
    if fields[-1] == "data_fields:":
        fields[-1] = "data_fields: []"
    if naive:
        lines += _zone_lines(columns)
    return "\n".join(lines + head + fields + _dedup_hint(columns, used)) + "\n"


def _naive(values: list[Any]) -> bool:
    """Date-times without an offset: they are read in the mapping's zone."""
    for value in values:
        if isinstance(value, datetime):
            return value.tzinfo is None
        if isinstance(value, str):
            return not OFFSET.search(value.strip())
    return False


def _zone_lines(columns: dict[str, list[Any]]) -> list[str]:
    """``timezone:`` for naive date-times: the zone of the sample's phone numbers when
    (nearly) all of them are in one, else a TODO that cannot be missed (UTC is wrong for
    most exports, silently, by an hour or two)."""
    zones: dict[str, int] = {}
    numbers = 0
    for column, values in columns.items():
        found = _identifier(column, values)
        if not found or found[0] != "phone":
            continue
        region = re.search(r"default_region: ([A-Z]{2})", found[2])
        for value in values:
            zone = _zone_of(to_text(value).strip(), region.group(1) if region else None)
            numbers += 1
            if zone:
                zones[zone] = zones.get(zone, 0) + 1
    policy = [
        "ambiguous: invalid      # a local time passed twice when daylight saving ends: invalid, earlier or later",
        "nonexistent: invalid    # a local time skipped when it starts: invalid or shift_forward",
    ]
    if zones:
        zone, n = max(zones.items(), key=lambda kv: kv[1])
        if n >= IDENTIFIER_SHARE * numbers:
            note = f"date-times have no offset; {n}/{numbers} phone numbers are in {zone}: check it"
            return [f"timezone: {zone}  # {note}", *policy]
    return [
        "timezone: UTC  # TODO: the date-times have no UTC offset: name the zone they were written in "
        "(e.g. Europe/Warsaw), or they are sent as if they were UTC",
        *policy,
    ]


def _zone_of(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, region)
    except phonenumbers.NumberParseException:
        return None
    zones = phone_zones.time_zones_for_number(number)
    return zones[0] if len(zones) == 1 and "/" in zones[0] else None


def _dedup_hint(columns: dict[str, list[Any]], used: set[str]) -> list[str]:
    """A commented ``dedup`` naming an order-id-like column whose sampled values are all
    present and distinct: a re-export with corrected values is then still one event."""
    for column, values in columns.items():
        texts = [to_text(v).strip() for v in values]
        if ORDER_ID_HINT.search(_norm(_ascii(column))) and texts and all(texts) and len(set(texts)) == len(texts):
            return [
                f"# dedup: {{key: [{_q(column)}]}}  # {column!r} looks like an order id ({len(texts):,} distinct "
                "sampled values): uncomment to send each order once, even when re-exported with other values"
            ]
    return []


def _q(text: str) -> str:
    """A YAML scalar for any text (a JSON string is a valid YAML double-quoted scalar)."""
    return json.dumps(text, ensure_ascii=False)


def _ascii(text: str) -> str:
    """``Nr zamówienia`` -> ``Nr zamowienia``, ``Ilość`` -> ``Ilosc``, ``Straße`` -> ``Strasse``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATION))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _field_name(column: str, taken: set[str]) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", _ascii(column)) if w] or ["field"]
    name = words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])
    if name[0].isdigit():
        name = "f" + name
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}{n}", n + 1
    taken.add(candidate)
    return candidate


def _norm(column: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", column.lower()).strip("_")


def _ok(fn: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def test(value: Any) -> bool:
        try:
            fn(value)
        except (ConversionError, ValueError, TypeError):
            return False
        return True

    return test


def _customer(columns: dict[str, list[Any]], used: set[str]) -> list[str]:
    """Each identifier key goes to its best column (a name saying ``crm`` beats one saying
    ``customer_id`` for the CRM id); the other columns stay data fields."""
    best: dict[str, tuple[int, str, str, str]] = {}
    for column, values in columns.items():
        found = _identifier(column, values)
        if found and (found[0] not in best or found[1] > best[found[0]][0]):
            best[found[0]] = (found[1], column, found[2], found[3])
    lines = ["customer:"]
    if not best:
        first = next(iter(columns))
        best["crm_id"] = (0, first, _q(first), "TODO: no identifier column recognised; pick the right one")
    for key in ("id", "email", "email_md5", "email_sha256", "phone", "crm_id"):
        if key in best:
            _, column, entry, comment = best[key]
            used.add(column)
            lines.append(f"  {key}: {entry}  # {comment}")
    return lines


def _identifier(column: str, values: list[Any]) -> tuple[str, int, str, str] | None:
    """(customer key, priority, YAML entry, comment) when the column looks like an
    identifier: 90 % of its sampled values must fit (the rest show up as invalid rows)."""
    name, n = _norm(column), len(values)
    if not values:
        return None

    def fits(test: Callable[[Any], bool]) -> str | None:
        m = sum(1 for v in values if test(v))
        return f"{m}/{n} sampled values" if m >= IDENTIFIER_SHARE * n else None

    if matched := fits(_ok(lambda v: check_hash(v, 32))):
        return "email_md5", 1, _q(column), f"{matched} are 32-digit hex (an MD5 of the email?)"
    if matched := fits(_ok(lambda v: check_hash(v, 64))):
        return "email_sha256", 1, _q(column), f"{matched} are 64-digit hex (a SHA-256 of the email?)"
    if matched := fits(_ok(normalise_email)):
        note = "sent trimmed and lowercased; to send only hashes use email_sha256: {hash_of: ...}"
        return "email", 1, _q(column), f"{matched} are emails, {note}"
    international = fits(lambda v: to_text(v).strip().startswith(("+", "00")) and _possible(to_text(v).strip(), None))
    if PHONE_HINT.search(name) or international:
        region, evidence = _phone_region(values)
        if region is not None:
            entry = f"{{column: {_q(column)}" + (f", default_region: {region}}}" if region else "}")
            return "phone", 1, entry, f"phone numbers; {evidence}"
    if ECDP_ID_HINT.search(name) and (matched := fits(lambda v: bool(re.fullmatch(r"\d+", to_text(v).strip())))):
        return "id", 1, _q(column), f"{matched} are integers (ECDP's own customer id)"
    if CRM_HINT.search(name) and (matched := fits(lambda v: len(to_text(v)) <= 128)):
        priority = 2 if "crm" in name else 1
        return "crm_id", priority, _q(column), f"named like a CRM id; {matched} fit 128 characters"
    return None


def _phone_region(values: list[Any]) -> tuple[str | None, str]:
    """(region, evidence): '' when the numbers are international; else the region under
    which the most numbers without a country code are *valid* (not merely of a possible
    length), among US, GB, DE, FR, PL and the regions of the sample's international
    numbers; '' with the reason when no region reads 90 % of them; None when the column
    holds no phone numbers at all."""
    texts = [to_text(v).strip() for v in values]
    international = [t for t in texts if t.startswith(("+", "00")) and _possible(t, None)]
    national = [t for t in texts if not t.startswith(("+", "00"))]
    if not national:
        return ("", "all sampled numbers carry a country code") if international else (None, "")
    regions = list(PHONE_REGIONS)
    for t in international:
        region = _region_of(t)
        if region and region not in regions:
            regions.append(region)
    # Ties (a French number missing its trunk 0 is a valid Polish one) go to the region
    # whose national format the numbers are written in.
    scores = sorted(((*_fit(national, r), r) for r in regions), reverse=True)
    (best, written, region), runner = scores[0], scores[1]
    evidence = f"{best}/{len(national)} sampled numbers without a country code are valid {region} numbers"
    evidence += f" (next: {runner[2]} {runner[0]})"
    if best >= IDENTIFIER_SHARE * len(national) and (best, written) > runner[:2]:
        return region, f"{evidence}; read as {region}"
    if best == 0 and not international and sum(_possible(t, r) for t in national for r in regions) == 0:
        return None, ""
    return "", f"no region is convincing ({evidence}); add default_region, or those rows are invalid"


def _fit(texts: list[str], region: str) -> tuple[int, int]:
    """(numbers valid in ``region``, of those the ones written as its national format)."""
    valid = written = 0
    for text in texts:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            valid += 1
            national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
            written += re.sub(r"\D", "", national) == re.sub(r"\D", "", text)
    return valid, written


def _region_of(text: str) -> str | None:
    try:
        number = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(number)


def _possible(text: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def _segments(columns: dict[str, list[Any]], used: set[str]) -> list[str]:
    """A column named like segments, or holding lists like ``1,5|15``, feeds ``segments``."""
    for column, values in columns.items():
        texts = [to_text(v).strip() for v in values]
        m = sum(1 for t in texts if SEGMENT_LIST.fullmatch(t))
        if not texts or m < IDENTIFIER_SHARE * len(texts):
            continue
        # A list needs a separator that is not a thousands separator (`1,008` is a number).
        listed = any(re.search(r"[,;|]", t) and not THOUSANDS_US.fullmatch(t) for t in texts)
        if "segment" in _norm(column) or listed:
            used.add(column)
            return [f"segments: {{column: {_q(column)}}}  # {m}/{len(texts)} sampled values are id lists"]
    return ["segments: [1]  # TODO: the segment ids to trigger the event for"]


def guess_field(column: str, values: list[Any], name: str) -> Guess:
    """The narrowest type every sampled value of the column fits, checked with the very
    converters ``run`` uses."""
    head = f"{{name: {_q(name)}, type: %s, column: {_q(column)}%s}}"
    n = len(values)
    if n == 0:
        return Guess(head % ("String", ""), "no values in the sample: String until you know better")
    typed = _typed_guess(values, n)
    if typed:
        return Guess(head % (typed[0], typed[1]), typed[2])
    texts = [to_text(v).strip() for v in values]
    for ftype, options, convert, shape in _candidates(column, texts):
        test = _ok(convert)
        misfits = [t for t in texts if not test(t)]
        if len(misfits) <= (1 - TYPE_SHARE) * n:
            comment = f"{n - len(misfits)}/{n} sampled values {shape}"
            if misfits:
                comment += f"; the rest will be invalid rows, e.g. {shown(misfits[0])}"
            return Guess(head % (ftype, options), comment)
    long = any(len(t) > 255 or "\n" in t for t in texts)
    return Guess(head % ("Text" if long else "String", ""), f"{n} values; no narrower type fits them all")


Candidate = tuple[str, str, Callable[[Any], Any], str]


def _candidates(column: str, texts: list[str]) -> list[Candidate]:
    """Types to try, narrowest first, each with its mapping options and its converter."""
    found: list[Candidate] = []
    words = {t.lower() for t in texts}
    name = _norm(column)
    if _boolean_column(words, name):
        found.append(("Boolean", "", convert_boolean, "are true/false words"))
        for yes, no in YES_NO:
            if words <= {yes, no}:
                options = f", true_values: [{yes}], false_values: [{no}]"
                convert = partial(convert_boolean, words=boolean_words((yes,), (no,)))
                found.append(("Boolean", options, convert, f"are {yes}/{no} words"))
    for fmt in _date_formats(texts):
        options = "" if fmt == "%Y-%m-%d" else f", format: {_q(fmt)}"
        found.append(("Date", options, partial(convert_date, formats=(fmt,)), f"match {fmt}{_ambiguity(fmt, texts)}"))
    if any(len(t) > 10 for t in texts):
        found.append(("DateTime", "", convert_datetime, "are ISO 8601 date-times"))
    for fmt in DATETIME_FORMATS:
        found.append(("DateTime", f", format: {_q(fmt)}", partial(convert_datetime, formats=(fmt,)), f"match {fmt}"))
    if not TEXT_ID_HINT.search(name) and not any(_leading_zero(t) or len(t) > 15 for t in texts):
        found += _number_readings(column, texts)
    found.append(("URL", "", convert_url, "are http(s) URLs"))
    return found


def _boolean_column(words: set[str], name: str) -> bool:
    """Boolean words are evidence; 0/1 alone only with a name like ``is_active``, and never
    when the column also holds other numbers (counts that are mostly 0 or 1)."""
    if words <= {"0", "1"}:
        return bool(BOOLEAN_NAME.search(name))
    numbers = {w for w in words if re.fullmatch(r"[+-]?[\d.,]+", w)}
    return numbers <= {"0", "1"}


def _number_readings(column: str, texts: list[str]) -> list[Candidate]:
    """Plain numbers, then US thousands separators (``1,008,383``), then a decimal comma
    (``1 234,50``): a value with more than one comma, or three digits after its comma,
    is read with thousands first; Money only when no value would be rounded."""
    ftype = "Money" if _money_name(column) and not any(_decimals(t) > 2 for t in texts) else "Number"
    found: list[Candidate] = [(ftype, "", convert_number, "are plain numbers")]
    if not any("," in t for t in texts):
        return found
    us = partial(convert_number, thousands=",")
    eu = partial(convert_number, decimal=",", thousands=". \u00a0\u202f")
    us_ok, eu_ok = all(_ok(us)(t) for t in texts), all(_ok(eu)(t) for t in texts)
    grouped = any(t.count(",") > 1 or THOUSANDS_US.fullmatch(t) for t in texts)
    us_note = "are numbers with thousands separators (1,234.5)"
    if us_ok and eu_ok:
        us_note += "; each could also be read with a decimal comma (1,234 = 1.234): check"
    if us_ok or grouped:
        found.append((ftype, ', thousands: ","', us, us_note))
    found.append((ftype, ', decimal: ","', eu, "are numbers with a decimal comma"))
    return found


def _money_name(column: str) -> bool:
    """A money word (price, total, ...) as a whole word of the name, and no word that
    says count, year, rate or id (``budgetYear`` is no amount)."""
    words = {w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", column)}
    return bool(words & MONEY_WORDS) and not words & NOT_MONEY_WORDS


def _decimals(text: str) -> int:
    found = re.search(r"[.,](\d+)$", text)
    return len(found.group(1)) if found and not THOUSANDS_US.fullmatch(text) else 0


def _date_formats(texts: list[str]) -> list[str]:
    """DATE_FORMATS, with day-first and month-first in the order the sample supports."""
    formats = list(DATE_FORMATS)
    firsts = [int(m.group(1)) for t in texts if (m := re.match(r"(\d{1,2})/(\d{1,2})/", t))]
    seconds = [int(m.group(2)) for t in texts if (m := re.match(r"(\d{1,2})/(\d{1,2})/", t))]
    if any(s > 12 for s in seconds) and not any(f > 12 for f in firsts):
        i, j = formats.index("%d/%m/%Y"), formats.index("%m/%d/%Y")
        formats[i], formats[j] = formats[j], formats[i]
    return formats


def _ambiguity(fmt: str, texts: list[str]) -> str:
    twin = SWAPPED.get(fmt)
    if twin and all(_ok(partial(convert_date, formats=(twin,)))(t) for t in texts):
        return f"; ambiguous: every sampled value also matches {twin} (no day or month over 12): check"
    return ""


def _typed_guess(values: list[Any], n: int) -> tuple[str, str, str] | None:
    """Parquet's own types decide, except for text columns."""
    kinds = {type(v) for v in values}
    matched = f"{n}/{n} sampled values"
    if kinds == {bool}:
        return "Boolean", "", f"{matched} are booleans"
    if kinds <= {datetime}:
        return "DateTime", "", f"{matched} are timestamps"
    if kinds <= {date}:
        return "Date", "", f"{matched} are dates"
    if kinds <= {Decimal}:
        cents = all(v.as_tuple().exponent == -2 for v in values)
        return ("Money" if cents else "Number"), "", f"{matched} are decimals" + (" with cents" if cents else "")
    if kinds <= {int, float}:
        return "Number", "", f"{matched} are numbers"
    return None if kinds <= {str} else ("String", "", f"{matched} rendered as text")


def _leading_zero(text: str) -> bool:
    digits = text.lstrip("+-")
    return len(digits) > 1 and digits[0] == "0" and digits[1].isdigit()
