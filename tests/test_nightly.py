"""The nightly ops loop as a new user lives it (issue 19): a Polish ERP export through
init-mapping, validate and run; daylight saving by policy; the first hour's surprises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Mock, read_report, run_cli

pytestmark = pytest.mark.usefixtures("store")

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


# --- empty is empty everywhere -----------------------------------------------------------


def test_empty_strings_in_a_dataframe_are_empty_as_in_csv(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    from importer import ValidateConfig, validate

    text = "crm_id,phone,total\nC1,,1\n,560 598 646,\n  ,601234567,2\n,,3\nC5,  ,4\n"
    (tmp_path / "in.csv").write_text(text)
    (tmp_path / "m.yaml").write_text(
        "endpoint: customer\ncustom_event_id: 1\n"
        "customer: {crm_id: crm_id, phone: {column: phone, default_region: PL}}\n"
        "data_fields: [{name: t, type: Money, column: total}]\n"
    )
    import io

    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    as_csv = validate(ValidateConfig(inputs=(str(tmp_path / "in.csv"),), mapping=str(tmp_path / "m.yaml"), report=str(tmp_path / "a.csv")))  # fmt: skip
    as_frame = validate(ValidateConfig(inputs=(frame,), mapping=str(tmp_path / "m.yaml"), report=str(tmp_path / "b.csv")))  # fmt: skip
    assert as_frame.counts == as_csv.counts == {"valid": 4, "invalid": 1}
    csv_rows = [(r["status"], r["detail"]) for r in read_report(tmp_path / "a.csv")]
    frame_rows = [(r["status"], r["detail"]) for r in read_report(tmp_path / "b.csv")]
    assert frame_rows == csv_rows and "no customer identifier" in frame_rows[3][1]


def test_an_empty_crm_id_is_never_sent() -> None:
    from importer.errors import ConversionError
    from importer.identity import to_crm_id

    with pytest.raises(ConversionError, match="empty"):
        to_crm_id("\u3000")  # an ideographic space: blank once trimmed


# --- the errors-file loop ----------------------------------------------------------------


def test_rerunning_an_errors_file_replaces_its_columns_and_keeps_the_original_row(tmp_path: Path, mock: Mock) -> None:
    from tests.conftest import CUSTOMER_MAPPING, customers_csv

    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 10, bad=(3, 7))

    def run(data: str, errors: str) -> Any:
        return run_cli(
            "run", data, "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "st", "--errors", errors,
            "--summary-json", "s.json", cwd=tmp_path,
        )  # fmt: skip

    first = run("in.csv", "e1.csv")
    assert first.returncode == 1 and "errors: e1.csv" in first.stdout
    assert json.loads((tmp_path / "s.json").read_text())["errors"] == "e1.csv"
    assert "next: fix the data or the mapping" in first.stdout
    second = run("e1.csv", "e2.csv")
    third = run("e2.csv", "e3.csv")
    assert second.returncode == third.returncode == 1
    for name in ("e1.csv", "e2.csv", "e3.csv"):
        rows = read_report(tmp_path / name)
        assert list(rows[0]) == ["crm_id", "email", "total", "_status", "_error", "_row"]
        assert [(r["crm_id"], r["_row"]) for r in rows] == [("C3", "3"), ("C7", "7")]
    assert len(mock.received()) == 8


def test_validate_keeps_its_own_report_beside_the_runs(tmp_path: Path, mock: Mock) -> None:
    from tests.conftest import CUSTOMER_MAPPING, customers_csv

    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 3, bad=(2,))
    run = run_cli("run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "st", cwd=tmp_path)
    assert run.returncode == 1
    before = (tmp_path / "in.report.csv").read_text()
    check = run_cli("validate", "in.csv", "--mapping", "m.yaml", cwd=tmp_path)
    assert check.returncode == 1 and "report: in.validate.csv" in check.stdout and "would send 2 rows" in check.stdout
    assert (tmp_path / "in.report.csv").read_text() == before
    customers_csv(tmp_path / "one.csv", 1)
    assert "would send 1 row\n" in run_cli("validate", "one.csv", "--mapping", "m.yaml", cwd=tmp_path).stdout


def test_the_plan_line_of_a_resumed_run_counts_what_is_left(tmp_path: Path, mock_factory: Any) -> None:
    from tests.conftest import CUSTOMER_MAPPING, customers_csv

    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 100)
    down = mock_factory("--fail-after", "30")
    args = ["run", "in.csv", "--mapping", "m.yaml", "--state-dir", "st", "--max-attempts", "1"]
    first = run_cli(*args, "--base-url", down.url, cwd=tmp_path)
    assert first.returncode == 75 and "plan: 100 rows at" in first.stderr
    assert "next: rerun the same command later" in first.stdout
    healthy = mock_factory(name="healthy.jsonl", replacing=down)
    second = run_cli(*args, "--base-url", healthy.url, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "plan: 70 rows left of 100 (30 done before) at" in second.stderr
    assert "run: 100 rows in 1 file over all runs; this run 70 rows in" in second.stdout


def test_the_progress_line_shows_retries_and_throttling() -> None:
    import io

    from importer.progress import Progress

    progress = Progress(io.StringIO(), False, 10.0)
    progress.add("sent")
    assert "retries" not in progress.line()
    progress.activity = lambda: (12, 3)
    assert progress.line().endswith("retries 12, throttled 3x")


def test_prune_dry_run_lists_the_imports_it_would_drop(tmp_path: Path, mock: Mock) -> None:
    from tests.conftest import CUSTOMER_MAPPING, customers_csv, state_sql

    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "old.csv", 2)
    run_cli("run", "old.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "st", cwd=tmp_path)
    state_sql(tmp_path, "st", "UPDATE imports SET created_at = '2020-01-01T00:00:00+00:00', finished_at = '2020-01-01T00:00:00+00:00'")  # fmt: skip
    dry = run_cli("prune", "--older-than", "30d", "--state-dir", "st", "--dry-run", cwd=tmp_path)
    assert "would drop 1 finished import(s)" in dry.stdout
    assert f"2020-01-01T00:00:00+00:00  {tmp_path / 'old.csv'}  (2 rows)" in dry.stdout


# --- hostile sizes -----------------------------------------------------------------------


def test_a_huge_column_name_is_cut_in_messages_and_a_huge_mapping_refused_at_once(tmp_path: Path) -> None:
    import time

    (tmp_path / "m.yaml").write_text("endpoint: customer\ncustom_event_id: 1\ncustomer: {crm_id: crm_id}\n")
    (tmp_path / "in.csv").write_text("x" * 5000 + ",other\n1,2\n")
    res = run_cli("validate", "in.csv", "--mapping", "m.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "x" * 77 + "..." in res.stderr and "x" * 81 not in res.stderr
    (tmp_path / "big.yaml").write_text("endpoint: customer\n" + "".join(f"k{i}: v\n" for i in range(200_000)))
    started = time.monotonic()
    res = run_cli("validate", "in.csv", "--mapping", "big.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "is not a mapping (a mapping is a few kilobytes" in res.stderr
    assert time.monotonic() - started < 10
