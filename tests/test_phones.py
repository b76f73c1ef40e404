"""The fast phone paths against phonenumbers, the oracle (``_phone_reference``).

Every input the importer can see: numbers of every country code and region, printed by
phonenumbers in each of its formats (E.164, international, national, RFC 3966), then
mutated (separators, trunk prefixes, ``00``, digits added and dropped, letters,
extensions, Unicode digits, padding), under every default region and none. Run on each
install: a metadata update of phonenumbers that the tables do not follow fails here.
"""

from __future__ import annotations

import string

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from importer import phones
from importer.identity import _e164, _phone_reference, to_e164s

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
FORMATS = (
    PhoneNumberFormat.E164,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.RFC3966,
)
TYPES = [getattr(PhoneNumberType, name) for name in dir(PhoneNumberType) if name.isupper() and name != "UNKNOWN"]


def _examples() -> list[phonenumbers.PhoneNumber]:
    """phonenumbers' own example number of every type in every region and non-geographic
    code: numbers its formatting rules group and give a trunk prefix."""
    found = []
    for region in REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append(number)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.append(number)
    return found


EXAMPLES = _examples()


def _number(code: int, national: str) -> phonenumbers.PhoneNumber:
    """A PhoneNumber of these digits, leading zeros kept as parse() keeps them."""
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national or "0"))
    zeros = len(national) - len(national.lstrip("0"))
    if zeros and len(national) > 1:
        number.italian_leading_zero = True
        number.number_of_leading_zeros = min(zeros, len(national) - 1)
    return number


def _oracle(raw: str, region: str | None) -> str:
    return _phone_reference(raw, region)


def _fast(raw: str, region: str | None) -> str:
    return _e164.__wrapped__(raw, region)  # uncached: the fast path itself each time


@st.composite
def printed(draw: st.DrawFn) -> str:
    """A number as phonenumbers prints it: an example number with some of its last digits
    replaced (it keeps the prefixes the formatting rules group by), or random digits of
    a length about possible for a random country code."""
    if draw(st.booleans()):
        example = draw(st.sampled_from(EXAMPLES))
        national = phonenumbers.national_significant_number(example)
        keep = draw(st.integers(0, len(national)))
        tail = draw(st.text("0123456789", min_size=len(national) - keep, max_size=len(national) - keep))
        number = _number(example.country_code, national[:keep] + tail)
    else:
        code = draw(st.sampled_from(CODES))
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            code, phonenumbers.region_code_for_country_code(code)
        )
        desc = metadata.general_desc
        size = draw(st.sampled_from(desc.possible_length + desc.possible_length_local_only)) + draw(
            st.sampled_from([0, 0, 0, -2, -1, 1, 2])
        )
        number = _number(code, draw(st.text("0123456789", min_size=max(size, 1), max_size=max(size, 1))))
    return phonenumbers.format_number(number, draw(st.sampled_from(FORMATS)))


SEPARATORS = [" ", "-", ".", "(", ")", "  ", " - ", "/", "\t", "\u00a0", "\u2013"]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A printed number, changed the ways exports change them."""
    text = draw(printed())
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(
            st.sampled_from(
                ["00", "sep", "drop", "add", "trunk", "letter", "ext", "pad", "plus", "wide", "strip", "garbage"]
            )
        )
        at = draw(st.integers(0, len(text)))
        if kind == "00" and text.startswith("+"):
            text = "00" + text[1:]
        elif kind == "sep":
            text = text[:at] + draw(st.sampled_from(SEPARATORS)) + text[at:]
        elif kind == "drop" and text:
            text = text[: min(at, len(text) - 1)] + text[min(at, len(text) - 1) + 1 :]
        elif kind == "add":
            text = text[:at] + draw(st.sampled_from(string.digits)) + text[at:]
        elif kind == "trunk":  # a national prefix, where one belongs or not
            text = draw(st.sampled_from(["0", "1", "8", "00", "0 ", "(0)", "+", "011", "810"])) + text.lstrip("+")
        elif kind == "letter":
            text = text[:at] + draw(st.sampled_from("ABCxXeE#*,;~")) + text[at:]
        elif kind == "ext":
            text += draw(
                st.sampled_from([" ext. 12", " x123", " #45", ";ext=7", ",,9", " - 12#", "/x1", " ext 1234567"])
            )
        elif kind == "pad":
            text = draw(st.sampled_from([" ", "\t", "\u2003", "\n"])) + text + draw(st.sampled_from(["", " ", "\r\n"]))
        elif kind == "plus":
            text = "+" + text
        elif kind == "wide":  # Unicode digits: phonenumbers reads them, the fast path must not guess
            text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        elif kind == "strip":
            text = "".join(c for c in text if c.isdigit() or c == "+")
        else:
            text = draw(st.text(max_size=12))
    return text


default_regions = st.one_of(st.none(), st.sampled_from(REGIONS), st.sampled_from(["PL", "DE", "US", "GB", "BR", "AR"]))
SETTINGS = settings(max_examples=600, deadline=None)


@SETTINGS
@given(mutated(), default_regions)
def test_one_number_answers_as_phonenumbers(raw: str, region: str | None) -> None:
    expected = _oracle(raw, region)
    assert _fast(raw, region) == expected
    if expected.startswith("+"):
        assert to_e164s([raw], region) == [expected]
    else:
        assert to_e164s([raw], region) is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(printed(), mutated()), min_size=1, max_size=8), default_regions)
def test_a_column_answers_as_phonenumbers(raws: list[str], region: str | None) -> None:
    expected = [_oracle(raw, region) for raw in raws]
    got = to_e164s(raws, region)
    assert got == (expected if all(e.startswith("+") for e in expected) else None)


@pytest.mark.parametrize("region", [None, "PL", "US", "DE", "GB", "BR", "AR", "JP"])
def test_every_example_number_in_every_format(region: str | None) -> None:
    """Each region's example numbers of every type, in each printed format and with
    ``00``: a sweep over all the metadata, whatever hypothesis draws."""
    for number in EXAMPLES:
        for form in FORMATS:
            text = phonenumbers.format_number(number, form)
            for raw in (text, "00" + text[1:] if text.startswith("+") else "0" + text):
                assert _fast(raw, region) == _oracle(raw, region), (raw, region)


def test_every_region_as_default_reads_its_own_numbers() -> None:
    """National forms under their own region, and the column pattern of every region."""
    for number in EXAMPLES:
        for region in phonenumbers.region_codes_for_country_code(number.country_code):
            if region == "001":
                continue
            national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
            digits = phonenumbers.national_significant_number(number)
            column = [national, digits, phonenumbers.format_number(number, PhoneNumberFormat.E164)]
            expected = [_oracle(raw, region) for raw in column]
            assert [_fast(raw, region) for raw in column] == expected, (column, region)
            assert to_e164s(column, region) == (expected if all(e.startswith("+") for e in expected) else None)


def test_the_fast_paths_answer_the_common_shapes() -> None:
    """Exact is not enough: the shapes exports hold must not fall back to phonenumbers, or
    the speed is gone without a failing answer. E.164 example numbers are answered by the
    column pattern, and national forms of the big regions by ``phones.e164``."""
    e164 = [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in EXAMPLES]
    pattern = phones.international_pattern()
    matched = [text for text in e164 if pattern.fullmatch(text)]
    assert len(matched) >= 0.9 * len(e164)
    assert all(_oracle(text, None) == text for text in matched)
    for region, national in [("PL", "600 123 456"), ("DE", "0171 1234567"), ("US", "(415) 555-0132"),
                             ("GB", "020 7946 0000"), ("FR", "06 12 34 56 78"), ("US", "1 415 555 0132")]:  # fmt: skip
        assert phones.e164(national, region) == _oracle(national, region)
    assert phones.international_pattern(column=True).fullmatch("+48600123456\n+14155550132")
    national = phones.national_pattern("PL", column=True)
    assert national is not None and national.fullmatch("600123456\n500123456")
    assert to_e164s(["+48 600 123 456", "600-123-456"], "PL") == ["+48600123456", "+48600123456"]


def test_words_of_the_failures_are_the_importers() -> None:
    """The problems keep the importer's words (the README's, the reports')."""
    assert _fast("+48 600", "PL") == "not a possible phone number (wrong length)"
    assert _fast("600123456", None) == "phone number has no country code and no default_region is set"
    assert _fast("call me", "PL") == "not a phone number"
    assert _fast("+86 1" + "2" * 17, None) == _oracle("+86 1" + "2" * 17, None)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("9 4", "DE"),
        ("94", "DE"),
        ("1 2 3", "DE"),
        ("+1 2", None),
        ("+12", None),
        ("0048", "PL"),
        ("(0) 30 123456", "DE"),
    ],
)
def test_short_numbers_and_separators(raw: str, region: str | None) -> None:
    """Two digits are a number to parse() only without a separator between (found by the
    differential run: the national column pattern took '9 4' under DE)."""
    expected = _oracle(raw, region)
    assert _fast(raw, region) == expected
    assert to_e164s([raw], region) == ([expected] if expected.startswith("+") else None)
