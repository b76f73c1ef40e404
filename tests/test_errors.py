"""Customer data never travels in a message: ``masked`` (emails and phone numbers out,
everything else kept) and every way out a message has: stderr, a webhook, errors.log,
the report's detail, the validate preview and exceptions of the Python API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from importer import MappingError, ValidateConfig, validate
from importer import cli as cli_module
from importer.errors import ConversionError, ImporterError, masked, shown
from tests.conftest import KEY, Mock, read_report, run_args, run_cli
from tests.test_guards import Receiver

EMAIL = "jan.kowalski@example.com"
PHONE = "+48600123456"
HEADERLESS = f"{EMAIL},{PHONE},10.00\nanna.nowak@example.com,+48600999888,5.00\n"
MAPPING = """\
endpoint: customer
custom_event_id: 77
customer:
  email: email
  phone: {column: phone, default_region: PL}
data_fields:
  - {name: total, type: Money, column: total}
"""
RAW = ("kowalski", "anna.nowak", "600123456", "600999888")


def assert_clean(text: str) -> None:
    """Neither of the file's emails nor its phones, whole or by their telling parts."""
    for raw in RAW:
        assert raw not in text


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# --- masked ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"its columns: {EMAIL}, {PHONE}, 10.00", "its columns: j***@example.com, +48***56, 10.00"),
        (f"{EMAIL},{PHONE},10.00", "j***@example.com,+48***56,10.00"),
        (f"'{EMAIL}' does not match format %Y-%m-%d", "'j***@example.com' does not match format %Y-%m-%d"),
        ("+48 600 123 456", "+48***56"),
        ("600-123-456", "600***56"),
        ("(022) 123 45 67", "(02***67"),
        ("call 600123456.", "call 600***56."),
        ("tel:600123456", "tel:600***56"),
        ("customerPhone: +4915112345678 invalid", "customerPhone: +49***78 invalid"),
        ("Anna.K+tag@mail.example.pl is taken", "A***@mail.example.pl is taken"),
    ],
)
def test_masked_hides_emails_and_phone_numbers(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "column 'email' (customer.email); column 'phone' (customer.phone) not found",
        "/data/drops/20261126/orders_20261126.csv: line 1: broken header",
        "export-20261126.csv",
        "20261126.parquet",
        "10.00",
        "1234567.89",
        "-1234567",
        "0.0000001",
        "1,234,567 of 9,876,543 rows (12.5%) are invalid, more than --max-invalid 0.7%",
        "2026-11-26",
        "2026-11-26T10:00:00Z",
        "2026-11-26 10:00:00",
        "26.11.2026",
        "31/12/2026",
        "2024-01-01 2024-12-31",
        "row 12345678: rejected HTTP 400 CustomerInvalidModelState",
        "line 12345678: broken CSV record",
        "byte 0xff at offset 12345678",
        "HTTP 503, Retry-After 120",
        "http://127.0.0.1:8080/hook",
        "sha256:3f2a91c04b1234567e8d",
        "123e4567-e89b-12d3-a456-426614174000",
        "0x1234567",
        "ecdp-import run on host-1234567: every row delivered (exit 0)",
    ],
)
def test_masked_keeps_what_is_no_customer_data(text: str) -> None:
    assert masked(text) == text


@given(st.emails())
def test_no_email_survives(email: str) -> None:
    assume("'" not in email)  # a quote ends a quoted value in a message, not an address
    assume(not email.startswith("*"))  # "*@a.ac" masks to "****@a.ac", which contains it: nothing is shown
    assert email not in masked(f"its columns: {email}, 10.00")
    assert email not in masked(f"{email},x") and email not in shown(email)


@given(st.from_regex(r"\+?[1-9][0-9]{6,14}", fullmatch=True), st.sampled_from([" ", "'", "(", ": ", "\t", "="]))
def test_no_phone_survives(phone: str, before: str) -> None:
    assert phone.lstrip("+") not in masked(f"value{before}{phone}, 10.00")
    assert phone.lstrip("+") not in masked(f"phone+{phone.lstrip('+')}")


@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False))
def test_amounts_with_a_fraction_are_kept(amount: Decimal) -> None:
    assert masked(f"total {amount} and {amount:,}") == f"total {amount} and {amount:,}"


@given(st.dates(), st.datetimes(), st.integers(min_value=1, max_value=10**10))
def test_dates_and_positions_are_kept(day: date, moment: datetime, number: int) -> None:
    for text in (day.isoformat(), f"{day:%d.%m.%Y}", moment.isoformat(), moment.isoformat(" "), f"row {number}"):
        assert masked(text) == text


@given(st.text())
def test_masking_twice_changes_nothing(text: str) -> None:
    assert masked(masked(text)) == masked(text)


def test_exceptions_of_the_library_carry_no_customer_data() -> None:
    error = ImporterError(f"bad {EMAIL} {PHONE}")
    assert_clean(str(error) + repr(error))
    conversion = ConversionError("is not a valid Date", EMAIL)
    assert str(conversion) == "'j***@example.com' is not a valid Date"
    assert_clean(repr(conversion))


def test_a_headerless_file_through_the_python_api(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(HEADERLESS)
    (tmp_path / "m.yaml").write_text(MAPPING)
    config = ValidateConfig(inputs=(str(tmp_path / "in.csv"),), mapping=str(tmp_path / "m.yaml"))
    with pytest.raises(MappingError) as info:
        validate(config)
    assert "(its columns: j***@example.com, +48***56, 10.00)" in str(info.value)
    assert_clean(str(info.value) + repr(info.value))


# --- every way out ----------------------------------------------------------------------------


def test_a_headerless_file_leaks_nowhere(tmp_path: Path, mock: Mock, receiver: Receiver) -> None:
    (tmp_path / "in.csv").write_text(HEADERLESS)
    (tmp_path / "m.yaml").write_text(MAPPING)
    res = run_cli(*run_args(mock, "--notify-url", receiver.url, "--summary-json", "s.json"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "not found in in.csv (its columns: j***@example.com, +48***56, 10.00)" in res.stderr
    assert "its first line looks like data: has the file no header row?" in res.stderr
    (body,) = receiver.bodies
    assert body["exit_code"] == 2 and "j***@example.com" in body["error"] and "j***@example.com" in body["text"]
    outputs = [res.stdout, res.stderr, *(raw.decode() for raw in receiver.raw)]
    outputs += [p.read_text() for p in (tmp_path / "s.json", tmp_path / "state" / "errors.log") if p.exists()]
    for text in outputs:
        assert_clean(text)
        assert KEY not in text
    assert mock.stats()["requests"] == 0


def test_an_internal_error_quoting_data_leaks_nowhere(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bug(*_: object) -> int:
        raise RuntimeError(f"cannot handle {EMAIL} / {PHONE}")

    monkeypatch.setattr(cli_module, "_run", bug)
    argv = ["run", "in.csv", "--mapping", "m.yaml", "--state-dir", str(tmp_path / "state")]
    assert cli_module.main([*argv, "--notify-url", receiver.url]) == cli_module.EXIT_SOFTWARE
    log = (tmp_path / "state" / "errors.log").read_text()
    assert "Traceback" in log and "cannot handle j***@example.com / +48***56" in log
    err = capsys.readouterr().err
    assert "internal error" in err and "j***@example.com" in err
    for text in (log, err, json.dumps(receiver.bodies)):
        assert_clean(text)


def test_report_detail_and_preview_mask_values(tmp_path: Path) -> None:
    """A column holding another column's data (a shifted export): the problem quotes the
    value, masked."""
    (tmp_path / "in.csv").write_text(f"email,phone,total,day\na@example.org,,{EMAIL},\nb@example.org,,1,{PHONE}\n")
    (tmp_path / "m.yaml").write_text(MAPPING + "  - {name: day, type: Date, column: day}\n")
    res = run_cli("validate", "in.csv", "--mapping", "m.yaml", "--report", "v.csv", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    details = [r["detail"] for r in read_report(tmp_path / "v.csv")]
    assert details == [
        "column 'total' (total): 'j***@example.com' is not a number",
        "column 'day' (day): '+48***56' does not match ISO 8601 (YYYY-MM-DD[THH:MM:SS][+zone])",
    ]
    assert "'j***@example.com'" in res.stdout
    for text in (res.stdout, res.stderr, *details):
        assert_clean(text)
