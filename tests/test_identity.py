from __future__ import annotations

import pytest

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


def test_email_is_trimmed_and_lowercased_before_hashing() -> None:
    email = normalise_email("  Anna@Example.COM \t")
    assert email == "anna@example.com"
    # Known vectors: md5/sha256 of "anna@example.com".
    assert md5_hex(email) == "6b56db1f84a3997b902509d3fbf0a306"
    assert sha256_hex(email) == "f7d54c22dda5b1780276601cd005909b70543fc4a6ba72d735b4cb9bbb611f01"


@pytest.mark.parametrize(
    "bad", ["not-an-email", "a@@b.com", "@example.com", "anna@", "an na@example.com", "anna@localhost"]
)
def test_bad_emails_are_rejected_without_echoing_them(bad: str) -> None:
    with pytest.raises(ConversionError) as info:
        normalise_email(bad)
    assert bad not in str(info.value)


def test_email_length_limit() -> None:
    with pytest.raises(ConversionError, match="320"):
        normalise_email("a" * 310 + "@example.com")


def test_prehashed_columns_are_validated_and_lowercased() -> None:
    assert check_hash("AC6EF50B6A8B1A9B6B3BD4FD65A3C5C7", 32) == "ac6ef50b6a8b1a9b6b3bd4fd65a3c5c7"
    with pytest.raises(ConversionError):
        check_hash("xyz", 32)
    with pytest.raises(ConversionError):
        check_hash("a" * 32, 64)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+48600123456", None, "+48600123456"),
        ("+48 600 123 456", None, "+48600123456"),
        ("600-123-456", "PL", "+48600123456"),
        ("0048600123456", None, "+48600123456"),
        (48600123456, "PL", "+48600123456"),
        ("+1 (415) 555-0132", "PL", "+14155550132"),
    ],
)
def test_phone_to_e164(raw: object, region: str | None, expected: str) -> None:
    assert to_e164(raw, region) == expected


def test_phone_without_country_code_or_region_is_invalid() -> None:
    with pytest.raises(ConversionError, match="default_region"):
        to_e164("600123456", None)
    with pytest.raises(ConversionError):
        to_e164("12", "PL")
    with pytest.raises(ConversionError):
        to_e164("call me", "PL")


def test_customer_id_is_an_integer() -> None:
    assert to_customer_id("00123") == 123
    assert to_customer_id(900123) == 900123
    assert to_customer_id(900123.0) == 900123
    for bad in ("12a", "1.5", "-1", True, 1.5):
        with pytest.raises(ConversionError):
            to_customer_id(bad)


def test_crm_id_keeps_text_and_integers_exact() -> None:
    assert to_crm_id(900123) == "900123"
    assert to_crm_id(900123.0) == "900123"
    assert to_crm_id("00123") == "00123"
    with pytest.raises(ConversionError, match="128"):
        to_crm_id("x" * 129)
