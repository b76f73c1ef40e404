"""Property-based tests: invariants over inputs nobody thought to write down."""

from __future__ import annotations

import csv
import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.convert import CONVERTERS
from importer.errors import ConversionError
from importer.identity import md5_hex, normalise_email, sha256_hex
from importer.mapping import compile_mapping
from importer.mockserver import FIELD_FORMATS
from importer.payload import PayloadBuilder
from importer.scaffold import scaffold
from importer.source import open_source

SETTINGS = settings(  # inherits the profile conftest loads (derandomized on CI)
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
local_part = st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20)
domain = st.from_regex(r"[A-Za-z0-9-]{1,12}(\.[A-Za-z]{2,6}){1,2}", fullmatch=True)
emails = st.builds(lambda a, b: f"{a}@{b}", local_part, domain)
padding = st.text(alphabet=" \t\n\u00a0\u2003", max_size=3)


@SETTINGS
@given(emails, padding, padding)
def test_email_normalisation_is_idempotent_and_equivalents_hash_the_same(email: str, left: str, right: str) -> None:
    normal = normalise_email(email)
    assert normalise_email(normal) == normal
    variant = left + email.upper() + right
    assert normalise_email(variant) == normal
    assert md5_hex(normalise_email(variant)) == md5_hex(normal)
    assert sha256_hex(normalise_email(variant)) == sha256_hex(normal)


values = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[+-]?\d{1,6}([.,]\d{1,4})?", fullmatch=True),
    st.from_regex(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?", fullmatch=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.booleans(),
    st.sampled_from(["https://shop.example.com/p?x=1", "javascript:x", "http://", "yes", "NO", "t"]),
)


@SETTINGS
@given(st.sampled_from(sorted(CONVERTERS)), values)
def test_a_converted_value_matches_its_wire_format_or_the_row_is_invalid(type_: str, value: Any) -> None:
    try:
        wire = CONVERTERS[type_](value)
    except ConversionError:
        return
    pattern = FIELD_FORMATS[type_]
    assert isinstance(wire, str)
    assert pattern is None or pattern.fullmatch(wire), (type_, value, wire)


cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@SETTINGS
@given(
    st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=2, max_size=5, unique=True),
    st.data(),
    st.sampled_from([",", ";", "\t", "|"]),
)
def test_any_csv_writer_table_reads_back_unchanged(
    tmp_path_factory: Any, header: list[str], data: Any, delim: str
) -> None:
    rows = data.draw(st.lists(st.lists(cell, min_size=len(header), max_size=len(header)), max_size=8))
    path = Path(tmp_path_factory.mktemp("csv")) / "t.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=delim).writerows([header, *rows])
    source = open_source(str(path), delimiter=delim)
    assert source.columns == header
    read = [[r.values[c] for c in header] for r in source.rows()]
    assert read == [[v if v.strip() else None for v in row] for row in rows]


column_values = st.one_of(
    st.lists(emails, min_size=1, max_size=6),
    st.lists(st.from_regex(r"\d{1,2}\.\d{2}\.20\d{2}", fullmatch=True), min_size=1, max_size=6),
    st.lists(st.from_regex(r"-?\d{1,5}(,\d{2})?", fullmatch=True), min_size=1, max_size=6),
    st.lists(st.sampled_from(["yes", "no", "true", "0", "1", "maybe", ""]), min_size=1, max_size=6),
    st.lists(cell, min_size=1, max_size=6),
)


@SETTINGS
@given(st.lists(column_values, min_size=1, max_size=5), st.sampled_from(["customer", "segments"]))
def test_init_mapping_output_always_loads_as_a_valid_mapping(
    tmp_path_factory: Any, columns: list[list[str]], endpoint: str
) -> None:
    height = max(len(c) for c in columns)
    header = [f"col {i}" for i in range(len(columns))]
    path = Path(tmp_path_factory.mktemp("init")) / "e.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in range(height):
            w.writerow([c[r] if r < len(c) else "" for c in columns])
    source = open_source(str(path), delimiter=",")
    mapping = compile_mapping(yaml.safe_load(scaffold(source, endpoint=endpoint)))
    mapping.check_columns(source.name, source.columns)
    builder = PayloadBuilder(mapping)
    for row in source.rows():
        rendered = builder.render(row)
        assert (rendered.body is None) == bool(rendered.errors)
