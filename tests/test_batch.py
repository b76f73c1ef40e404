"""The batch renderer against the row renderer (the reference): equal results, bytes and all.

``BatchRenderer`` converts column by column through per-column caches and assembles the
valid rows itself; ``PayloadBuilder.render`` is the renderer every earlier release used.
Here both render the same rows (generated, hostile, typed like Parquet, repeated across
batches so the caches answer) and must agree on every status, detail, customer_ref and
request body byte. The file-level check runs ``validate`` and ``run`` through the CLI on
a generated export and compares the report and the bodies the mock received with the
row renderer's.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer import batch as batch_module
from importer.batch import BatchRenderer
from importer.cli import main
from importer.errors import InputError
from importer.mapping import compile_mapping, parse_yaml
from importer.payload import PayloadBuilder, Rendered
from importer.source import Row, open_source, rows_batch
from tests.conftest import KEY, Mock, run_args

MAPPINGS = {
    "typical": """\
custom_event_id: 31
timezone: Europe/Warsaw
customer:
  crm_id: crm
  email: {column: mail}
  email_md5: {hash_of: email}
  email_sha256: {hash_of: email}
  phone: {column: tel, default_region: PL}
data_fields:
  - {name: total, type: Money, column: amount}
  - {name: at, type: DateTime, column: at}
  - {name: day, type: Date, column: day}
  - {name: n, type: Number, column: amount}
  - {name: paid, type: Boolean, column: flag}
  - {name: url, type: URL, column: url}
  - {name: note, type: String, column: note}
  - {name: channel, type: String, value: web}
""",
    "required": """\
custom_event_id: {column: event}
customer:
  id: {column: cid, required: true}
  email_sha256: {hash_of: mail}
  email_md5: {column: md5}
data_fields:
  - {name: total, type: Money, column: amount, decimal: ",", required: true}
  - {name: at, type: DateTime, column: at, format: ["%d.%m.%Y %H:%M", epoch_s], timezone: America/New_York}
  - {name: day, type: Date, column: day, format: excel}
  - {name: paid, type: Boolean, column: flag, true_values: [tak], false_values: [nie]}
  - {name: text, type: Text, column: note, required: true}
""",
    "hash_only": """\
custom_event_id: 5
customer:
  email_sha256: {column: sha}
  email_md5: {hash_of: mail, required: true}
  phone: tel
""",
    "phone_only": """\
custom_event_id: 9
customer: {phone: {column: tel, default_region: PL}}
data_fields:
  - {name: paid, type: Boolean, column: flag}
""",
    "filtered": """\
custom_event_id: 5
customer: {crm_id: crm}
filter: {column: flag, equals: "yes"}
data_fields:
  - {name: at, type: DateTime, column: at}
""",
}
COLUMNS = ("crm", "mail", "tel", "amount", "at", "day", "flag", "url", "note", "event", "cid", "md5", "sha")
TEXTS: dict[str, list[str]] = {
    "crm": ["CRM-1", " CRM-2 ", "x" * 129, "Ⅻ", "0"],
    "mail": [" Ann@Example.COM", "bob@x.io", "no-at", "a@b@c", "mailto:a@b.io", "İSTANBUL@ÖRNEK.TR", "a b@c.de"],
    "tel": ["+48 601 234 567", "601234567", "0048601234567", "12", "+1 202 555 0100", "phone"],
    "amount": ["12.5", "1 234,50", "-0.001", "1e5000", "NaN", "١٢٣", "99999999999999999999999999999.995", "7"],
    "at": [
        "2026-03-29 02:30:00",
        "2026-10-25 02:30:00",
        "0999-12-31 23:00:00",
        "2026-11-01T10:00:00+01:00",
        "31.12.2025 23:59",
        "1700000000",
        "9999-12-31 23:59:59",
        "2026-02-30 10:00:00",
        "bad",
    ],
    "day": ["2026-01-02", "45000", "2026-13-01", "0001-01-01", "9999-12-31"],
    "flag": ["yes", "no", "tak", "nie", "maybe", "1", "TRUE"],
    "url": ["https://shop.example.com/p/1", "http://x", "ftp://x", "https://a b"],
    "note": ["plain", "żółć", "a\nb", "x" * 300],
    "event": ["31", "0", "2147483648", "+7", "²"],
    "cid": ["17", "-1", "9223372036854775808", "1.5", "00042"],
    "md5": ["0" * 32, "A" * 32, "xyz"],
    "sha": ["f" * 64, "F" * 64, "short"],
}
TYPED: list[Any] = [
    1, 0, -5, 2**53 + 1, 1.5, 1.0, -0.0, float("nan"), float("inf"), True, False,
    Decimal("12.345"), Decimal("-0"), Decimal("1E+30"),
    datetime(2026, 3, 29, 2, 30), datetime(2026, 5, 1, 12, tzinfo=UTC), datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    date(2026, 1, 2), date(9999, 12, 31), ["a", "b"],
]  # fmt: skip
BLANK = [None, None, " "]


GOOD: dict[str, list[str]] = {
    "crm": ["CRM-1", " CRM-2 "], "mail": [" Ann@Example.COM", "bob@x.io"], "tel": ["+48 601 234 567", "601234567"],
    "amount": ["12.5", "7"], "at": ["2026-11-01T10:00:00+01:00", "1700000000"], "day": ["2026-01-02", "45000"],
    "flag": ["yes", "no", "tak", "nie"], "url": ["https://shop.example.com/p/1", "http://x"], "note": ["plain", "żółć"],
    "event": ["31", "+7"], "cid": ["17", "00042"], "md5": ["0" * 32, "A" * 32], "sha": ["f" * 64, "F" * 64],
}  # fmt: skip
ANY_VALUE = st.one_of(
    st.sampled_from([v for values in TEXTS.values() for v in values]),
    st.sampled_from(BLANK),
    st.sampled_from(TYPED),
    st.text(max_size=12),
)
# A row of good values with up to three replaced by anything (hostile, blank, typed, random):
# most rows are valid or have one problem, which is where the two renderers could part.
ROW = st.builds(
    lambda good, changed: {**good, **changed},
    st.fixed_dictionaries({c: st.sampled_from(GOOD[c]) for c in COLUMNS}),
    st.dictionaries(st.sampled_from(COLUMNS), ANY_VALUE, max_size=3),
)


def _same(expected: list[Rendered], got: list[Rendered]) -> None:
    assert got == expected
    for e, g in zip(expected, got, strict=True):  # dict equality ignores key order; the wire does not
        assert (None if g.body is None else orjson.dumps(g.body)) == (None if e.body is None else orjson.dumps(e.body))


def _check(builder: PayloadBuilder, renderer: BatchRenderer, rows: list[Row]) -> None:
    batch = rows_batch(rows, list(COLUMNS))
    expected = [builder.render(row) for row in rows]
    _same(expected, renderer.render(batch))
    refs, others = renderer.verdicts(batch)
    assert refs == [r.customer_ref if r.body is not None else None for r in expected]
    assert others == {i: r for i, r in enumerate(expected) if r.body is None}


@pytest.mark.parametrize("name", sorted(MAPPINGS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(ROW, min_size=1, max_size=12), min_size=1, max_size=4), error=st.booleans())
def test_batch_renders_what_the_row_renderer_does(name: str, batches: list[list[dict[str, Any]]], error: bool) -> None:
    builder = PayloadBuilder(compile_mapping(parse_yaml(MAPPINGS[name])))
    renderer = BatchRenderer(builder)  # one renderer for every batch: its caches carry over
    number = 1
    for values in batches + batches:  # the second pass is answered from the caches
        rows = [Row(number + i, v, "row has 3 fields, the header has 13" if error and i == 0 else None)
                for i, v in enumerate(values)]  # fmt: skip
        _check(builder, renderer, rows)
        number += len(rows)


def test_a_cache_that_does_not_pay_is_dropped_and_answers_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "TRIAL_VALUES", 64)
    monkeypatch.setattr(batch_module, "CACHE_LIMIT", 4)  # fewer than the flags: starts over many times
    builder = PayloadBuilder(compile_mapping(parse_yaml(MAPPINGS["typical"])))
    renderer = BatchRenderer(builder)
    rng = random.Random(5)
    for start in range(1, 2000, 100):
        rows = [
            Row(start + i, {"crm": f"C{start + i}", "mail": f"u{start + i}@x.io", "amount": f"{start + i}.5",
                            "at": rng.choice(TEXTS["at"]), "flag": rng.choice(TEXTS["flag"]), "tel": None})
            for i in range(100)
        ]  # fmt: skip
        _check(builder, renderer, rows)
    amounts = next(c for s, c in renderer._fields if not isinstance(s, dict) and s.name == "total")
    assert amounts is not None and amounts.cache is None  # every amount different: its cache was dropped
    flags = next(c for s, c in renderer._fields if not isinstance(s, dict) and s.name == "paid")
    assert flags is not None and flags.cache is not None and len(flags.cache) <= 4  # kept, and bounded


def _export(path: Path, rows: int) -> None:
    """A messy export: mostly good rows, some with each kind of problem, values repeating."""
    rng = random.Random(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["crm", "mail", "tel", "amount", "at", "day", "flag", "url", "note"])
        for i in range(rows):
            bad = rng.random() < 0.05

            def pick(column: str, bad: bool = bad, i: int = i) -> str:
                return rng.choice(TEXTS[column]) if bad else TEXTS[column][i % 2]

            w.writerow([
                f"CRM-{i}" if i % 50 else "", f"User.{i}@Example.com" if not bad else pick("mail"), pick("tel"),
                f"{rng.randint(1, 9999) / 100}" if not bad else pick("amount"),
                f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i % 7:02d}" if not bad else pick("at"),
                pick("day"), pick("flag"), pick("url"), pick("note") if i % 9 else " ",
            ])  # fmt: skip
        fh.write("\n1,2\n")  # a blank line (not a row), then a short record


def test_validate_and_run_give_the_row_renderers_report_and_bodies(
    tmp_path: Path, mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The differential check on a file: every report line and every body sent equal what
    the row renderer gives for the same rows."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    data, mapping = tmp_path / "in.csv", tmp_path / "m.yaml"
    _export(data, 6000)
    mapping.write_text(MAPPINGS["typical"])
    builder = PayloadBuilder(compile_mapping(parse_yaml(mapping.read_text())))
    expected = {row.number: builder.render(row) for row in open_source(str(data)).rows()}
    assert len(expected) == 6001 and sum(r.body is None for r in expected.values()) > 200

    assert main(["validate", "in.csv", "--mapping", "m.yaml", "--report", "v.csv"]) == 1
    with (tmp_path / "v.csv").open(newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert [int(line["row_number"]) for line in lines] == list(expected)
    for line in lines:
        r = expected[int(line["row_number"])]
        assert (line["status"], line["detail"], line["customer_ref"]) == (
            "valid" if r.body is not None else r.status, r.detail, r.customer_ref)  # fmt: skip

    assert main(run_args(mock, "--no-progress")) == 1
    sent = sorted(orjson.dumps(doc["body"]) for doc in mock.received())
    wanted = {orjson.dumps(r.body) for r in expected.values() if r.body is not None}
    assert len(sent) == len(wanted) and set(sent) == wanted  # a body that repeats is sent once (the ledger)
    with (tmp_path / "r.csv").open(newline="") as fh:
        statuses = {int(line["row_number"]): line for line in csv.DictReader(fh)}
    for number, r in expected.items():
        if r.body is None:
            assert (statuses[number]["status"], statuses[number]["detail"]) == (r.status, r.detail)


@settings(max_examples=400, deadline=None)
@given(text=st.from_regex(r"\A[0-9]{1,20}(\.[0-9]{0,3})?\Z") | st.text(alphabet="0123456789.-+e ", max_size=24))
def test_the_plain_number_shortcuts_give_what_decimal_gives(text: str) -> None:
    """Money and Number skip Decimal for plain ASCII amounts; the answer is Decimal's."""
    from decimal import ROUND_HALF_UP, InvalidOperation

    from importer.convert import _CENT, _plain, convert_money, convert_number, to_decimal
    from importer.errors import ConversionError

    try:
        exact = to_decimal(text)
    except ConversionError:
        with pytest.raises(ConversionError):
            convert_number(text)
        return
    assert convert_number(text) == _plain(exact)
    try:
        cents = exact.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than Decimal's context holds
        with pytest.raises(ConversionError):
            convert_money(text)
        return
    assert convert_money(text) == format(cents if cents else cents.copy_abs(), "f")


FIELD = st.text(alphabet=st.sampled_from(list('ab ,;"\n\r\té\u00a0\u2003')), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(st.lists(FIELD, min_size=0, max_size=5), max_size=14),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    raw=st.binary(max_size=3),
)
def test_csv_batches_hold_the_rows_rows_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records: list[list[str]], quoting: int, raw: bytes
) -> None:
    """Blank and whitespace-only lines and cells, ragged records, quoted empties, bare CRs
    and undecodable bytes: the batches (read a chunk at a time, here of 3 records) give
    exactly the rows the row reader gives."""
    from importer import source as source_module

    monkeypatch.setattr(source_module, "STAMP_EVERY", 3)
    text = io.StringIO(newline="")
    csv.writer(text, quoting=quoting).writerows([["a", "b", "c"], *records])
    path = tmp_path / "in.csv"
    path.write_bytes(text.getvalue().encode("utf-8") + raw + b"\n")
    try:
        expected = list(open_source(str(path)).rows())
    except InputError as exc:  # a broken file is refused the same way, with the same words
        with pytest.raises(InputError) as again:
            list(open_source(str(path)).batches())
        assert str(again.value) == str(exc)
        return
    assert [row for batch in open_source(str(path)).batches() for row in batch.rows()] == expected


@pytest.mark.parametrize(
    ("column", "bad"),
    [("crm", "x" * 129), ("mail", "A@B@C"), ("mail", "a" * 317 + "@x.io"), ("mail", "ann@ex ample.io")],
)
def test_a_column_converted_at_once_falls_back_for_the_one_value_that_fails(column: str, bad: str) -> None:
    """Text columns (CRM ids, emails, strings) convert at once when every value passes;
    one value that does not sends the batch value by value, and only its row fails."""
    builder = PayloadBuilder(compile_mapping(parse_yaml(MAPPINGS["typical"])))
    good = {c: values[0] for c, values in GOOD.items()}
    rows = [Row(i + 1, {**good, "crm": f"C{i}", "mail": f"u{i}@x.io"}) for i in range(50)]
    rows[17] = Row(18, {**rows[17].values, column: bad})
    _check(builder, BatchRenderer(builder), rows)
    assert builder.render(rows[17]).body is None  # the case is one that fails
