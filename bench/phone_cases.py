"""Generated phone numbers for ``make bench``'s differential run (issue 21): the fast paths
of ``importer.phones`` against phonenumbers alone, on millions of values.

Values are built from phonenumbers' metadata with ``random`` (cheap enough to make ten
million): a country code (often a common one, else any), national digits of a possible
length or one off, often behind an example number's leading digits so the numbers look
real, written as E.164, grouped international, ``00``, national with or without the
trunk prefix, ``(0)``, ``tel:``; then sometimes mutated (a letter, an extension, a digit
added or dropped, Unicode digits, padding, garbage). Each chunk is one column under one
default region, as an export's is.
"""

from __future__ import annotations

import random
from typing import Any

import phonenumbers

from importer import phones
from importer.identity import _phone_reference, to_e164s

COMMON = [48, 49, 1, 44, 33, 39, 34, 7, 86, 91, 55, 54, 52, 81, 61, 31, 90, 380, 420, 353]
CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
SEPARATORS = [" ", " ", "-", ".", "", " - ", "(", ")"]
WIDE = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))  # fullwidth digits
EXTRAS = [" ext. 12", " x123", "#", ";ext=7", ",,9", "/x1", " abc", "\u00a0"]


def _facts(code: int) -> tuple[list[int], list[str], str]:
    """A code's possible lengths, its example numbers' digits, its national prefix."""
    region = phonenumbers.region_code_for_country_code(code)
    meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    desc = meta.general_desc
    examples = []
    for name in dir(phonenumbers.PhoneNumberType):
        if name.isupper() and region != "001":
            number = phonenumbers.example_number_for_type(region, getattr(phonenumbers.PhoneNumberType, name))
            if number is not None:
                examples.append(phonenumbers.national_significant_number(number))
    if region == "001":
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            examples.append(phonenumbers.national_significant_number(number))
    lengths = list(desc.possible_length) + list(desc.possible_length_local_only)
    return [n for n in lengths if n > 0] or [8], examples, meta.national_prefix or ""


FACTS = {code: _facts(code) for code in CODES}


def _group(rng: random.Random, digits: str) -> str:
    out, i = [], 0
    sep = rng.choice(SEPARATORS)
    while i < len(digits):
        step = rng.randint(2, 4)
        out.append(digits[i : i + step])
        i += step
    return sep.join(out) if rng.random() < 0.7 else "".join(out)


def value(rng: random.Random) -> str:
    code = rng.choice(COMMON) if rng.random() < 0.5 else rng.choice(CODES)
    lengths, examples, trunk = FACTS[code]
    size = rng.choice(lengths) + (rng.choice([-2, -1, 1, 2]) if rng.random() < 0.15 else 0)
    size = max(size, 1)
    head = rng.choice(examples)[: rng.randint(0, 4)] if examples and rng.random() < 0.7 else ""
    national = (head + "".join(rng.choices("0123456789", k=size)))[:size]
    form = rng.random()
    if form < 0.3:
        text = f"+{code}{national}"
    elif form < 0.5:
        text = f"+{code} " + _group(rng, national)
    elif form < 0.6:
        text = f"00{code}" + rng.choice(["", " "]) + _group(rng, national)
    elif form < 0.8:
        text = (trunk if rng.random() < 0.7 else "") + _group(rng, national)
    elif form < 0.85:
        text = f"+{code} (0) " + _group(rng, national)
    elif form < 0.9:
        text = f"tel:+{code}-" + _group(rng, national).replace(" ", "-")
    else:
        text = rng.choice(["0", "1", "8", "011", "810", "+", "(", ""]) + _group(rng, national)
    if rng.random() < 0.12:
        kind = rng.randrange(7)
        at = rng.randint(0, len(text))
        if kind == 0:
            text = text[:at] + rng.choice("ABCxeE#*,;~/") + text[at:]
        elif kind == 1:
            text += rng.choice(EXTRAS)
        elif kind == 2:
            text = text[:at] + rng.choice("0123456789") + text[at:]
        elif kind == 3 and text:
            text = text[: max(at - 1, 0)] + text[at:]
        elif kind == 4:
            text = text.translate(WIDE)
        elif kind == 5:
            text = rng.choice([" ", "\t", "\n", ""]) + text + rng.choice([" ", "\r", ""])
        else:
            text = "".join(rng.choices("0123456789+ -()abc.#", k=rng.randint(0, 16)))
    return text


def region_for(rng: random.Random) -> str | None:
    pick = rng.random()
    if pick < 0.1:
        return None
    if pick < 0.5:
        return rng.choice(["PL", "DE", "US", "GB", "FR", "IT", "ES", "BR", "AR", "MX", "IN", "CN", "RU", "JP"])
    return rng.choice(REGIONS)


def compare(task: tuple[int, int, int]) -> dict[str, Any]:
    """``count`` values from ``seed`` in columns of ``column`` values: each through
    ``phones.e164`` (where it answers), the column patterns and ``to_e164s``, against
    phonenumbers alone. Returns the counts and the first few differences."""
    seed, count, column = task
    rng = random.Random(seed)
    differing = fast = patterned = 0
    examples: list[tuple[str, str | None, str, str]] = []
    international = phones.international_pattern()
    for start in range(0, count, column):
        region = region_for(rng)
        national = phones.national_pattern(region)
        home = "+" + phones.country_code_of(region)
        raws = [value(rng) for _ in range(min(column, count - start))]
        refs = [_phone_reference(raw, region) for raw in raws]
        for raw, ref in zip(raws, refs, strict=True):
            text = raw.strip()
            text = "+" + text[2:] if text.startswith("00") else text
            answer = phones.e164(text, region)
            fast += answer is not None
            bare = text.translate(phones.SEPARATORS)
            by_pattern = (
                bare
                if international.fullmatch(bare)
                else home + bare
                if national is not None and national.fullmatch(bare)
                else None
            )
            patterned += by_pattern is not None
            for got in (answer, by_pattern):
                if got is not None and got != ref:
                    differing += 1
                    if len(examples) < 5:
                        examples.append((raw, region, got, ref))
        whole = to_e164s(raws, region)
        wanted = refs if all(ref.startswith("+") for ref in refs) else None
        if whole != wanted:
            differing += 1
            if len(examples) < 5:
                examples.append((repr(raws[:3]), region, repr(whole and whole[:3]), repr(wanted and wanted[:3])))
    return {"values": count, "differing": differing, "fast": fast, "patterned": patterned, "examples": examples}
