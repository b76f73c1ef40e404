"""The nightly ops loop as a new user lives it (issue 19): a Polish ERP export through
init-mapping, validate and run; daylight saving by policy; the first hour's surprises."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Mock, read_report, run_cli

ERP = (
    "Nr zamówienia;Ilość;Kwota;Data zamówienia;Telefon;Zgoda marketingowa\r\n"
    "ZAM/2025/0001;2;12.345,67;07.01.2025 02:27;560 598 646;tak\r\n"
    "ZAM/2025/0002;1;99,00;26.10.2025 02:32;601 234 567;nie\r\n"
    "ZAM/2025/0003;5;1.000,00;30.03.2025 02:10;+48 502 111 222;tak\r\n"
    "ZAM/2025/0004;3;7,50;08.01.2025 10:00;512 345 678;nie\r\n"
)


@pytest.fixture
def erp(tmp_path: Path) -> Path:
    (tmp_path / "zamowienia.csv").write_bytes(ERP.encode("cp1250"))
    return tmp_path


def test_init_mapping_of_a_polish_erp_export(erp: Path) -> None:
    res = run_cli("init-mapping", "zamowienia.csv", "--encoding", "cp1250", "--event-id", "5", "-o", "m.yaml", cwd=erp)
    assert res.returncode == 0, res.stderr
    text = (erp / "m.yaml").read_text()
    assert '{name: "nrZamowienia", type: String, column: "Nr zamówienia"}' in text  # transliterated
    assert '{name: "ilosc",' in text and '"dataZamowienia"' in text and '"zgodaMarketingowa"' in text
    assert "true_values: [tak], false_values: [nie]" in text
    assert "timezone: Europe/Warsaw  # date-times have no offset" in text  # guessed from the phones
    assert "ambiguous: invalid" in text and "nonexistent: invalid" in text
    assert '# dedup: {key: ["Nr zamówienia"]}' in text


def test_init_mapping_without_a_zone_to_guess_writes_a_todo(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("crm_id,at\nC1,2025-01-07 02:27:00\nC2,2025-01-08 10:00:00\n")
    res = run_cli("init-mapping", "e.csv", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "timezone: UTC  # TODO: the date-times have no UTC offset" in res.stdout
    (tmp_path / "z.csv").write_text("crm_id,at\nC1,2025-01-07T02:27:00+01:00\n")
    assert "timezone" not in run_cli("init-mapping", "z.csv", cwd=tmp_path).stdout  # offsets: nothing to say


def test_a_utf16_file_is_told_its_encoding(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_bytes("crm_id,total\nC1,1\n".encode("utf-16"))
    res = run_cli("init-mapping", "u.csv", cwd=tmp_path)
    assert res.returncode == 2 and "utf-16 byte-order mark: pass --encoding utf-16" in res.stderr
    assert "cp1250" not in res.stderr


def test_the_erp_export_goes_through_with_a_daylight_saving_policy(erp: Path, mock: Mock) -> None:
    run_cli("init-mapping", "zamowienia.csv", "--encoding", "cp1250", "--event-id", "5", "-o", "m.yaml", cwd=erp)
    mapping = erp / "m.yaml"
    first = run_cli("validate", "zamowienia.csv", "--mapping", "m.yaml", "--encoding", "cp1250", cwd=erp)
    assert first.returncode == 1 and "ambiguous" in first.stdout and "does not exist" in first.stdout
    text = mapping.read_text().replace("ambiguous: invalid", "ambiguous: earlier")
    mapping.write_text(text.replace("nonexistent: invalid", "nonexistent: shift_forward"))
    res = run_cli(
        "run", "zamowienia.csv", "--mapping", "m.yaml", "--encoding", "cp1250", "--base-url", mock.url,
        "--state-dir", "st", "--report", "r.csv", cwd=erp,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert [r["status"] for r in read_report(erp / "r.csv")] == ["sent"] * 4
    sent = {r["body"]["dataFields"][0]["value"]: r["body"] for r in mock.received()}
    at = {
        b["dataFields"][0]["value"]: next(f["value"] for f in b["dataFields"] if f["name"] == "dataZamowienia")
        for b in sent.values()
    }
    assert at == {
        "ZAM/2025/0001": "2025-01-07T01:27:00Z",  # 02:27 in Warsaw is 01:27 UTC, not 02:27Z
        "ZAM/2025/0002": "2025-10-26T00:32:00Z",  # the earlier of the two 02:32s
        "ZAM/2025/0003": "2025-03-30T01:00:00Z",  # skipped by the clock: the first moment after
        "ZAM/2025/0004": "2025-01-08T09:00:00Z",
    }


# --- CLI hygiene -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "x.csv", "--mapping", "m.yaml", "--new"], "unrecognized arguments: --new; did you mean --new-import?"),
        (["run", "x.csv", "--mapping", "m.yaml", "--retry"], "did you mean --retry-rejected?"),
        (["run", "x.csv", "--mapping", "m.yaml", "--no-d"], "did you mean --no-dedup?"),
        (["run", "x.csv", "--mapping", "m.yaml", "--rate-limt", "5"], "did you mean --rate-limit?"),
        (["rnu", "x.csv"], "did you mean run?"),
        (["run", "x.csv", "--mapping", "m.yaml", "--dry-run"], "`ecdp-import validate` checks and renders every row"),
    ],
)
def test_flags_are_never_taken_by_prefix_and_typos_get_a_suggestion(tmp_path: Path, args: list[str], said: str) -> None:
    res = run_cli(*args, cwd=tmp_path)
    assert res.returncode == 2 and said in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


# --- the Python API takes the obvious call ------------------------------------------------


def test_run_config_takes_a_plain_key_and_checks_every_field_when_built(tmp_path: Path, mock: Mock) -> None:
    from importer import RunConfig, Secret, run_import
    from tests.conftest import CUSTOMER_MAPPING, KEY, customers_csv

    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 3)
    config = RunConfig(
        inputs=[tmp_path / "in.csv"], mapping=tmp_path / "m.yaml", api_key=KEY, base_url=mock.url,
        state_dir=str(tmp_path / "st"), report=str(tmp_path / "r.csv"),
    )  # fmt: skip
    assert isinstance(config.api_key, Secret) and KEY not in repr(config)
    assert run_import(config).counts == {"sent": 3}
    for wrong, field in ((dict(concurrency="8"), "concurrency"), (dict(no_dedup=1), "no_dedup"), (dict(api_key=None), "api_key")):  # fmt: skip
        with pytest.raises(TypeError, match=rf"RunConfig\.{field} must be"):
            RunConfig(**{"inputs": ("a.csv",), "mapping": "m.yaml", "api_key": "k", **wrong})
