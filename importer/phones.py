"""Phone numbers to E.164 in a few µs, with exactly ``phonenumbers``' answers.

``phonenumbers.parse`` + ``is_possible_number`` + ``format_number`` cost 15–30 µs a number
in pure Python, most of it on inputs that need none of its generality: ``+48 600 123 456``,
``0171 1234567``. This module answers the inputs made only of ASCII digits and the
separators `` .-()`` (one leading ``+`` allowed) by following ``parse``'s own steps for
them, on ``phonenumbers``' metadata compiled once into tables: each table is filled by
asking ``phonenumbers`` itself (its length test for every length, its regular
expressions as written), so the tables cannot drift from the installed metadata. Anything
else (letters, extensions, Unicode digits, an IDD prefix, an unknown country code, a
number too short or too long to parse) is answered ``None``: the caller asks
``phonenumbers``. ``tests/test_phones.py`` and ``make bench`` compare both on generated
numbers of every region, in every format ``phonenumbers`` prints, mutated.

Two ways in:
- ``e164(text, region)``: one number (the importer's ``to_e164`` tries it first);
- ``international_pattern`` and ``national_pattern(region)``: regular expressions that a
  whole column of separator-free texts, joined by line breaks, is matched against in one
  call, with no Python step per value. They hold only the shapes whose E.164 form is the
  text itself (``+`` numbers) or the region's country code before it (national numbers):
  no national prefix to strip, a possible length, nothing that looks like an IDD.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

PHONE_MAX = 20  # the longest E.164 text the API takes
WRONG_LENGTH = "not a possible phone number (wrong length)"
TOO_LONG = f"phone longer than {PHONE_MAX} characters"

_MIN_NSN = 2  # phonenumbers' _MIN_LENGTH_FOR_NSN
_MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
_MAX_DIGITS = 24  # more digits than any answer here can use: phonenumbers decides
_MAX_TEXT = 64  # well under phonenumbers' 250-character limit
_LENGTHS = 32  # lengths tabulated; national numbers are at most _MAX_DIGITS long

# The only shape answered here: digits and separators, at most one leading '+'. No letter
# (vanity numbers, extensions), no '#', ',', ';', 'x', '/', '~' (extensions, second
# numbers), no Unicode digit or space: for all of those phonenumbers takes other steps.
_SHAPE = re.compile(r"\+?[0-9 .()\-]+")
SEPARATORS = str.maketrans("", "", " .()-")

_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE
_LOCAL_ONLY = phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY
_TOO_LONG = phonenumbers.ValidationResult.TOO_LONG
# What parse() refuses as a national number after stripping a national prefix.
_KEEP_UNSTRIPPED = (
    phonenumbers.ValidationResult.TOO_SHORT,
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    phonenumbers.ValidationResult.INVALID_LENGTH,
)


class _Meta(NamedTuple):
    """What parse() and is_possible_number() read of one metadata entry."""

    code: str  # the country calling code, as text
    idd: re.Pattern[str] | None  # international (IDD) prefix
    prefix: re.Pattern[str] | None  # national_prefix_for_parsing
    transform: str | None  # national_prefix_transform_rule
    general: re.Pattern[str] | None  # general_desc's national_number_pattern
    lengths: tuple[int, ...]  # phonenumbers' _test_number_length for each length
    prefix_text: str | None  # national_prefix_for_parsing as written (for the column pattern)
    idd_text: str | None


def _compile(metadata: PhoneMetadata) -> _Meta | None:
    """The table for one metadata entry, or None when it uses something this module does
    not follow (then every number that needs it goes to phonenumbers)."""
    from phonenumbers import phonenumberutil

    test_length = getattr(phonenumberutil, "_test_number_length", None)
    if test_length is None or metadata.general_desc is None:  # a phonenumbers this code does not know
        return None
    prefix = metadata.national_prefix_for_parsing or None
    transform = metadata.national_prefix_transform_rule or None
    if prefix is not None and transform is not None and re.compile(prefix).groups == 0:
        return None  # parse() would index an empty groups() tuple: leave such oddities to it
    pattern = metadata.general_desc.national_number_pattern or None
    return _Meta(
        code=str(metadata.country_code),
        idd=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        prefix=re.compile(prefix) if prefix else None,
        transform=transform,
        general=re.compile(pattern) if pattern else None,
        # The length test depends only on the length: asking it once per length is
        # asking it for every number.
        lengths=tuple(test_length("0" * n, metadata) for n in range(_LENGTHS)),
        prefix_text=prefix,
        idd_text=metadata.international_prefix or None,
    )


_BY_CODE: dict[str, _Meta | None] = {}  # country calling code (text) -> its main metadata
_BY_REGION: dict[str | None, _Meta | None] = {}  # default region -> its metadata


def _by_code(code: str) -> _Meta | None:
    """The metadata parse() and is_possible_number() use for a country calling code."""
    if code not in _BY_CODE:
        number = int(code)
        found = None
        if number in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            region = phonenumbers.region_code_for_country_code(number)
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(number, region)
            found = _compile(metadata) if metadata is not None else None
        _BY_CODE[code] = found
    return _BY_CODE[code]


def _by_region(region: str | None) -> _Meta | None:
    """The default region's metadata; None for no region or one phonenumbers rejects."""
    if region not in _BY_REGION:
        found = None
        if region is not None and region in phonenumbers.SUPPORTED_REGIONS:
            metadata = PhoneMetadata.metadata_for_region(region, None)
            if metadata is not None and metadata.country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                found = _compile(metadata)
        _BY_REGION[region] = found
    return _BY_REGION[region]


def _country_code(digits: str) -> str | None:
    """parse()'s country code after a '+': the shortest known prefix of 1–3 digits."""
    if digits[0] == "0":
        return None
    for size in (1, 2, 3):
        if int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return digits[:size]
    return None


def _national(number: str, meta: _Meta) -> bool:
    """phonenumbers' _match_national_number(number, general_desc, False)."""
    return meta.general is not None and meta.general.fullmatch(number) is not None


def _strip_prefix(number: str, meta: _Meta) -> str:
    """phonenumbers' _maybe_strip_national_prefix_carrier_code, the number part."""
    if not number or meta.prefix is None:
        return number
    match = meta.prefix.match(number)
    if match is None:
        return number
    viable = _national(number, meta)
    groups = match.groups()
    if meta.transform is None or groups[-1] is None:
        stripped = number[match.end() :]
    else:
        stripped = meta.prefix.sub(meta.transform, number, count=1)
    if viable and not _national(stripped, meta):
        return number
    return stripped


def e164(text: str, region: str | None) -> str | None:
    """The E.164 form of a trimmed number (a leading ``00`` already turned into ``+``), or
    the problem as the importer words it, or None: not a shape answered here."""
    if len(text) > _MAX_TEXT or _SHAPE.fullmatch(text) is None:
        return None
    digits = text.translate(SEPARATORS)
    plus = digits[:1] == "+"
    if plus:
        digits = digits[1:]
    if not 3 <= len(digits) <= _MAX_DIGITS:
        return None  # phonenumbers' words for too few digits depend on more than the count
    if plus:
        code = _country_code(digits)
        if code is None:
            return None  # parse() retries without the '+': leave that to it
        meta = _by_code(code)
        national = digits[len(code) :]
    else:
        home = _by_region(region)
        if home is None or home.idd is None:
            return None
        if home.idd.match(digits):
            return None  # maybe an international number after an IDD prefix
        meta, national = home, digits
        if digits.startswith(home.code):
            # parse() reads the region's own country code in front of a national number
            # when the rest is a better national number, or the whole is too long.
            rest = _strip_prefix(digits[len(home.code) :], home)
            if (not _national(digits, home) and _national(rest, home)) or home.lengths[len(digits)] == _TOO_LONG:
                meta, national = _by_code(home.code), rest
    if meta is None or len(national) < _MIN_NSN:
        return None
    stripped = _strip_prefix(national, meta)
    if meta.lengths[len(stripped)] not in _KEEP_UNSTRIPPED:
        national = stripped
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    # is_possible_number reads the country code's main metadata (a default region of CA
    # parses with CA's, then tests the length with US's).
    main = _by_code(meta.code)
    if main is None:
        return None
    if main.lengths[len(national)] not in (_POSSIBLE, _LOCAL_ONLY):
        return WRONG_LENGTH
    # The national significant number keeps its leading zeros (Italian numbers): for
    # two digits or more phonenumbers prints exactly the digits it parsed.
    number = "+" + main.code + national
    return number if len(number) <= PHONE_MAX else TOO_LONG


# In a pattern built from metadata, a prefix rule is embedded as a lookahead: safe only
# for plain rules (no anchors, no escapes but \d, no groups but (?:...)). Such a rule
# cannot see past a line break either ('.' stops there), so a column joined by line
# breaks is matched in one call with the same answer as each text alone.
_PLAIN_RULE = re.compile(r"(?:[^\\^$(]|\\d|\((?!\?)|\(\?:)*")
_PATTERNS: dict[tuple[str, str | None], re.Pattern[str] | None] = {}


def _lengths_alternation(main: _Meta, shortest: int = _MIN_NSN) -> str | None:
    """The national lengths that are possible and fit E.164's 20 characters, as a regex."""
    sizes = [
        n
        for n in range(shortest, _MAX_NSN + 1)
        if main.lengths[n] in (_POSSIBLE, _LOCAL_ONLY) and 1 + len(main.code) + n <= PHONE_MAX
    ]
    return "|".join(f"[0-9]{{{n}}}" for n in sizes) or None


def _not(rule: str | None) -> str | None:
    """A lookahead refusing what ``rule`` matches at the start, or None if not plain."""
    if rule is None:
        return ""
    return f"(?!(?:{rule}))" if _PLAIN_RULE.fullmatch(rule) else None


def international_pattern(column: bool = False) -> re.Pattern[str]:
    """Texts already free of separators (``SEPARATORS``) that are their own E.164 form
    for certain: ``+`` and digits where ``e164`` would answer the text itself (a known
    country code, no national prefix rule matching, a possible length). With ``column``,
    one or more such texts joined by line breaks."""
    pattern = _pattern("+", None, column)
    assert pattern is not None
    return pattern


def national_pattern(region: str | None, column: bool = False) -> re.Pattern[str] | None:
    """Texts free of separators whose E.164 form under ``region`` is for certain ``+``,
    the region's country code (``country_code_of``) and the text; None for a region this
    module does not read."""
    return _pattern("national", region, column)


def _pattern(kind: str, region: str | None, column: bool) -> re.Pattern[str] | None:
    key = (kind + "+column" * column, region)
    if key not in _PATTERNS:
        one = _international() if kind == "+" else _national_regex(region)
        if one is None:
            _PATTERNS[key] = None
        else:
            _PATTERNS[key] = re.compile(f"(?:{one})(?:\\n(?:{one}))*" if column else one)
    return _PATTERNS[key]


def _international() -> str:
    tails: dict[str, str] = {}
    for number in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        code = str(number)
        # parse() takes the shortest known code: a longer one behind it never applies.
        if any(_country_code(code[:size]) == code[:size] for size in range(1, len(code))):
            continue
        meta = _by_code(code)
        lookahead = _not(meta.prefix_text) if meta is not None else None
        sizes = _lengths_alternation(meta) if meta is not None else None
        if lookahead is not None and sizes is not None:
            tails[code] = f"{lookahead}(?:{sizes})"
    return r"\+" + _trie(tails)


def _national_regex(region: str | None) -> str | None:
    home = _by_region(region)
    main = _by_code(home.code) if home is not None else None
    if home is None or main is None or home.idd is None:
        return None
    idd, prefix = _not(home.idd_text), _not(home.prefix_text)
    # Three digits at least: two with a separator between are not a number to parse()
    # (its viability pattern), and e164 leaves even two alone to it.
    sizes = _lengths_alternation(main, shortest=3)
    if idd is None or prefix is None or sizes is None:
        return None
    # Not '00' (the importer reads it as '+'), not an IDD, not the region's own country
    # code in front, no national prefix: then e164 answers the code and the digits.
    return f"(?!00){idd}(?!{home.code}){prefix}(?:{sizes})"


def _trie(tails: dict[str, str]) -> str:
    """``(?:code1 tail1|code2 tail2|...)`` with shared leading digits factored out, so a
    number meets one branch per digit instead of every country's."""
    by_first: dict[str, dict[str, str]] = {}
    for code, tail in tails.items():
        by_first.setdefault(code[0], {})[code[1:]] = tail
    branches = []
    for first, rest in sorted(by_first.items()):
        if list(rest) == [""]:
            branches.append(first + rest[""])
        else:  # codes are prefix-free (checked above), so no code ends where another goes on
            branches.append(first + _trie(rest))
    return "(?:" + "|".join(branches) + ")"


def country_code_of(region: str | None) -> str:
    """The default region's country code, which ``national_pattern``'s texts follow."""
    home = _by_region(region)
    return home.code if home is not None else ""
