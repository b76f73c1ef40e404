"""Daylight saving, value by value: every zone-bearing conversion of a wall time the clock
skips (spring) or passes twice (autumn), under each policy. A table, not only an
end-to-end run: a bug in ``localise`` is shared by both renderers, so comparing them
cannot see it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from importer.convert import convert_date, convert_datetime, localise
from importer.errors import ConversionError
from importer.mapping import compile_mapping, parse_yaml
from importer.payload import PayloadBuilder
from importer.source import Row

# zone, a skipped wall time, the first moment after its gap (UTC)
GAPS = [
    ("Europe/Warsaw", "2025-03-30 02:30:00", "2025-03-30T01:00:00Z"),
    ("Europe/Warsaw", "2025-03-30 02:00:00", "2025-03-30T01:00:00Z"),
    ("Europe/Warsaw", "2025-03-30 02:59:59", "2025-03-30T01:00:00Z"),
    ("America/New_York", "2025-03-09 02:15:00", "2025-03-09T07:00:00Z"),
    ("Australia/Lord_Howe", "2025-10-05 02:15:00", "2025-10-04T15:30:00Z"),  # a 30-minute gap
    ("America/Sao_Paulo", "2018-11-04 00:30:00", "2018-11-04T03:00:00Z"),  # a gap at midnight
]
# zone, a wall time passed twice, its earlier and later moments (UTC)
OVERLAPS = [
    ("Europe/Warsaw", "2025-10-26 02:32:00", "2025-10-26T00:32:00Z", "2025-10-26T01:32:00Z"),
    ("Europe/Warsaw", "2025-10-26 02:00:00", "2025-10-26T00:00:00Z", "2025-10-26T01:00:00Z"),
    ("America/New_York", "2025-11-02 01:30:00", "2025-11-02T05:30:00Z", "2025-11-02T06:30:00Z"),
    ("Australia/Lord_Howe", "2025-04-06 01:45:00", "2025-04-05T14:45:00Z", "2025-04-05T15:15:00Z"),
]


@pytest.mark.parametrize(("zone", "wall", "after"), GAPS)
def test_a_skipped_wall_time_is_refused_unless_shifted_forward(zone: str, wall: str, after: str) -> None:
    tz = ZoneInfo(zone)
    with pytest.raises(ConversionError, match="does not exist in"):
        convert_datetime(wall, tz=tz)
    for ambiguous in ("earlier", "later"):  # the overlap policy does not cover a gap
        with pytest.raises(ConversionError, match="does not exist in"):
            convert_datetime(wall, tz=tz, ambiguous=ambiguous)
    assert convert_datetime(wall, tz=tz, nonexistent="shift_forward") == after
    with pytest.raises(ConversionError, match="does not exist in"):
        localise(datetime.fromisoformat(wall), tz)


@pytest.mark.parametrize(("zone", "wall", "earlier", "later"), OVERLAPS)
def test_a_wall_time_passed_twice_is_refused_unless_a_side_is_chosen(
    zone: str, wall: str, earlier: str, later: str
) -> None:
    tz = ZoneInfo(zone)
    with pytest.raises(ConversionError, match="is ambiguous in"):
        convert_datetime(wall, tz=tz)
    with pytest.raises(ConversionError, match="is ambiguous in"):
        convert_datetime(wall, tz=tz, nonexistent="shift_forward")
    assert convert_datetime(wall, tz=tz, ambiguous="earlier") == earlier
    assert convert_datetime(wall, tz=tz, ambiguous="later") == later


@pytest.mark.parametrize("zone", ["Europe/Warsaw", "America/New_York", "Australia/Lord_Howe"])
def test_ordinary_wall_times_are_unchanged_by_every_policy(zone: str) -> None:
    tz = ZoneInfo(zone)
    for wall in ("2025-01-15 12:00:00", "2025-07-15 23:59:59", "2025-03-29 02:30:00"):
        expected = datetime.fromisoformat(wall).replace(tzinfo=tz).astimezone(ZoneInfo("UTC"))
        shown = expected.strftime("%Y-%m-%dT%H:%M:%SZ")
        for ambiguous in ("invalid", "earlier", "later"):
            for nonexistent in ("invalid", "shift_forward"):
                assert convert_datetime(wall, tz=tz, ambiguous=ambiguous, nonexistent=nonexistent) == shown


def test_a_value_with_its_offset_is_accepted_whatever_the_formats() -> None:
    tz = ZoneInfo("Europe/Warsaw")
    formats = ("%d.%m.%Y %H:%M",)
    assert convert_datetime("26.10.2025 02:32", formats, tz, ambiguous="later") == "2025-10-26T01:32:00Z"
    assert convert_datetime("2025-10-26 02:32:00+02:00", formats, tz) == "2025-10-26T00:32:00Z"
    assert convert_datetime("2025-10-26T02:32:00+01:00", formats, tz) == "2025-10-26T01:32:00Z"
    with pytest.raises(ConversionError, match="does not match format"):
        convert_datetime("2025-10-26 02:32:00", formats, tz)  # no offset: the formats rule


def test_a_date_of_a_moment_is_the_zones_day_and_a_naive_one_is_its_own() -> None:
    tz = ZoneInfo("Europe/Warsaw")
    assert convert_date("2025-10-25T23:30:00+00:00", tz=tz) == "2025-10-26"
    assert convert_date("2025-10-26 02:32:00", tz=tz) == "2025-10-26"  # no moment, no ambiguity
    assert convert_date("2025-03-30 02:30:00", tz=tz) == "2025-03-30"


def render(mapping: str, when: str) -> tuple[str, object]:
    builder = PayloadBuilder(compile_mapping(parse_yaml(mapping)))
    rendered = builder.render(Row(1, {"c": "C1", "t": when}))
    return rendered.status, (rendered.body or {}).get("dataFields") or rendered.detail


def test_the_mapping_chooses_per_mapping_and_per_field() -> None:
    base = "endpoint: customer\ncustom_event_id: 1\ntimezone: Europe/Warsaw\ncustomer: {crm_id: c}\n"
    field = "data_fields: [{name: at, type: DateTime, column: t, format: '%d.%m.%Y %H:%M'%s}]\n"
    status, detail = render(base + field.replace("%s", ""), "26.10.2025 02:32")
    assert status == "invalid" and "ambiguous" in str(detail)
    status, fields = render(base + "ambiguous: earlier\n" + field.replace("%s", ""), "26.10.2025 02:32")
    assert fields == [{"name": "at", "type": "DateTime", "value": "2025-10-26T00:32:00Z"}]
    status, fields = render(base + "ambiguous: earlier\n" + field.replace("%s", ", ambiguous: later"), "26.10.2025 02:32")  # fmt: skip
    assert fields == [{"name": "at", "type": "DateTime", "value": "2025-10-26T01:32:00Z"}]
    status, fields = render(base + "nonexistent: shift_forward\n" + field.replace("%s", ""), "30.03.2025 02:10")
    assert fields == [{"name": "at", "type": "DateTime", "value": "2025-03-30T01:00:00Z"}]


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("ambiguous: first\n", "ambiguous: must be one of invalid, earlier, later"),
        ("nonexistent: shift_backward\n", "nonexistent: must be one of invalid, shift_forward"),
        ("data_fields: [{name: d, type: Date, column: t, ambiguous: earlier}]\n", "applies to DateTime fields only"),
    ],
)
def test_bad_policies_are_mapping_errors(yaml_text: str, problem: str) -> None:
    from importer.errors import MappingError

    with pytest.raises(MappingError, match=problem):
        compile_mapping(parse_yaml("endpoint: customer\ncustom_event_id: 1\ncustomer: {crm_id: c}\n" + yaml_text))
