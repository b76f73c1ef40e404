"""init-mapping guesses that hold on real exports (issue 12): each sample is written like a
public export, guessed through the CLI, then validated; every value must arrive as the
source meant it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from importer.mapping import compile_mapping, parse_yaml
from importer.payload import PayloadBuilder
from importer.source import open_source
from tests.conftest import read_report, run_cli, write_csv


def guess(tmp: Path, name: str, header: list[str], rows: list[list[Any]]) -> tuple[dict[str, Any], str]:
    write_csv(tmp / name, header, rows)
    res = run_cli("init-mapping", name, "--event-id", "7", cwd=tmp)
    assert res.returncode == 0, res.stderr
    (tmp / "m.yaml").write_text(res.stdout)
    return parse_yaml(res.stdout), res.stdout


def field(doc: dict[str, Any], column: str) -> dict[str, Any]:
    return next(f for f in doc["data_fields"] if f["column"] == column)


def sent_values(tmp: Path, name: str, column: str) -> list[str | None]:
    """What ``run`` would send for ``column``, row by row (None: no value / invalid)."""
    builder = PayloadBuilder(compile_mapping(parse_yaml((tmp / "m.yaml").read_text())))
    wanted = field(parse_yaml((tmp / "m.yaml").read_text()), column)["name"]
    out: list[str | None] = []
    for row in open_source(str(tmp / name)).rows():
        body = builder.render(row).body
        fields = {f["name"]: f["value"] for f in (body or {}).get("dataFields", [])}
        out.append(fields.get(wanted))
    return out


def valid_share(tmp: Path, name: str) -> float:
    res = run_cli("validate", name, "--mapping", "m.yaml", "--report", "v.csv", cwd=tmp)
    assert res.returncode in (0, 1), res.stderr
    statuses = [r["status"] for r in read_report(tmp / "v.csv")]
    return statuses.count("valid") / len(statuses)


AREA_CODES = ["212", "415", "312", "617", "206", "305", "213", "646", "202", "404", "209"]


def test_a_us_export(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(1, 1001):
        cost = rng.choice(["0", "1"]) if i % 250 else rng.choice(["4175", "12000"])
        rows.append(
            [
                f"CUST{i:05d}",
                f"{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{rng.randint(1000, 9999)}",
                f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}"
                if i % 3
                else f"{rng.randint(1, 9)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d}",
                cost,
                f"{rng.choice(['Jan', 'Feb', 'Mar', 'Oct'])} {rng.randint(1, 28)} {rng.randint(1990, 2020)}",
                f"{rng.randint(1, 12):02d}/{rng.randint(13, 28)}/2021"
                if i % 2
                else f"{rng.randint(1, 12):02d}/{rng.randint(1, 12):02d}/2021",
                f"{rng.uniform(-1, 1):.3f}",
                str(rng.randint(1980, 2024)),
                f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}",
                rng.choice(["0", "1"]),
            ]
        )
    header = [
        "crm_id",
        "phone",
        "population",
        "cost",
        "opened",
        "signup",
        "value",
        "budgetYear",
        "orderTotal",
        "is_active",
    ]
    doc, text = guess(tmp_path, "us.csv", header, rows)
    assert doc["customer"]["phone"] == {"column": "phone", "default_region": "US"}
    assert "valid US numbers" in text
    assert field(doc, "cost")["type"] == "Money"  # 0/1-heavy amounts are no booleans
    assert sent_values(tmp_path, "us.csv", "cost") == [f"{r[3]}.00" for r in rows]
    assert field(doc, "is_active")["type"] == "Boolean"  # 0/1 with a boolean name
    population = field(doc, "population")
    assert population["type"] == "Number" and population["thousands"] == ","
    assert field(doc, "opened")["format"] == "%b %d %Y"
    assert field(doc, "signup")["format"] == "%m/%d/%Y"
    assert field(doc, "value")["type"] == "Number" and field(doc, "budgetYear")["type"] == "Number"
    assert field(doc, "orderTotal")["type"] == "Money"
    assert valid_share(tmp_path, "us.csv") >= 0.99
    expected_population = [r[2].replace(",", "") for r in rows]
    assert sent_values(tmp_path, "us.csv", "population") == expected_population
    assert sent_values(tmp_path, "us.csv", "value") == [_plain(r[6]) for r in rows]  # -0.103 stays -0.103


def _plain(text: str) -> str:
    from importer.convert import convert_number

    return convert_number(text)


def test_a_european_export(tmp_path: Path) -> None:
    rng = random.Random(8)
    rows = []
    for i in range(1, 601):
        rows.append(
            [
                f"u{i}@example.eu",
                rng.choice(["+49 30 901820", "+33 1 44 11 73 00", "+48 22 628 00 00", "+44 20 7946 0958"]),
                f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2022"
                if i % 4
                else f"{rng.randint(13, 28)}/{rng.randint(1, 12):02d}/2022",
                f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2023 {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                f"{rng.randint(1, 9999)},{rng.randint(0, 99):02d}",
                f"0{rng.randint(1000, 9999)}",
                f"2023{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                f"2001/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            ]
        )
    header = ["email", "telefon", "birthday", "ordered_at", "kwota", "postcode", "day", "created"]
    doc, text = guess(tmp_path, "eu.csv", header, rows)
    assert doc["customer"]["phone"] == {"column": "telefon"}  # every number carries its country code
    assert "all sampled numbers carry a country code" in text
    assert field(doc, "birthday")["format"] == "%d/%m/%Y"
    assert field(doc, "ordered_at")["format"] == "%d.%m.%Y %H:%M"
    assert field(doc, "kwota") == {"name": "kwota", "type": "Money", "column": "kwota", "decimal": ","}
    assert field(doc, "postcode")["type"] == "String"  # leading zeros: text
    assert field(doc, "day")["format"] == "%Y%m%d"
    assert field(doc, "created")["format"] == "%Y/%m/%d %H:%M"
    assert valid_share(tmp_path, "eu.csv") >= 0.99
    assert sent_values(tmp_path, "eu.csv", "kwota") == [r[4].replace(",", ".") for r in rows]
    assert sent_values(tmp_path, "eu.csv", "postcode") == [r[5] for r in rows]


def test_a_count_that_is_mostly_0_or_1_is_a_number(tmp_path: Path) -> None:
    rows = [[f"C{i}", "0" if i % 3 else "1"] for i in range(996)] + [
        [f"D{i}", v] for i, v in enumerate(["4175", "12000", "3", "7"])
    ]
    doc, _ = guess(tmp_path, "c.csv", ["crm_id", "visits"], rows)
    assert field(doc, "visits")["type"] == "Number"
    assert valid_share(tmp_path, "c.csv") == 1.0


def test_ambiguous_day_month_order_is_said(tmp_path: Path) -> None:
    rows = [[f"C{i}", f"{1 + i % 12:02d}/{1 + (i * 5) % 12:02d}/2024"] for i in range(60)]
    doc, text = guess(tmp_path, "amb.csv", ["crm_id", "when"], rows)
    assert field(doc, "when")["format"] == "%d/%m/%Y"  # the first of the twins, with a warning
    assert "ambiguous: every sampled value also matches" in text


@pytest.mark.parametrize(
    "numbers, region, note",
    [
        (["2095257564", "4155550123", "2125551234", "3125550198"], "US", "valid US numbers"),
        (["600 100 001", "601 234 567", "512 345 678", "698 765 432"], "PL", "valid PL numbers"),
        (["07911 123456", "07400 123456", "020 7123 4567", "0161 234 5678"], "GB", "valid GB numbers"),
        (["123", "4567", "89", "12"], None, "no region is convincing"),
    ],
)
def test_phone_regions_by_valid_numbers(tmp_path: Path, numbers: list[str], region: str | None, note: str) -> None:
    rows = [[f"C{i}", numbers[i % len(numbers)]] for i in range(40)]
    doc, text = guess(tmp_path, "p.csv", ["crm_id", "phone"], rows)
    phone = doc["customer"]["phone"]
    assert phone.get("default_region") == region, text
    assert note in text


def test_segments_are_id_lists_not_thousands(tmp_path: Path) -> None:
    rows = [[f"{i},{i * 7 % 1000:03d}", "5,12|30"] for i in range(1, 50)]
    write_csv(tmp_path / "s.csv", ["reach", "targets"], rows)
    res = run_cli("init-mapping", "s.csv", "--endpoint", "segments", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert parse_yaml(res.stdout)["segments"] == {"column": "targets"}
