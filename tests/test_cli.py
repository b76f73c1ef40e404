"""What a user sees: one-line messages and the contract's exit codes, no tracebacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CUSTOMER_MAPPING, KEY, cli_env, customers_csv, read_report, run_cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 3, bad=(2,))
    return tmp_path


def fails_with(workdir: Path, message: str, *args: str, env: dict[str, str] | None = None) -> None:
    result = run_cli(*args, cwd=workdir, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "state").exists() or "another" in message


RUN = ("run", "in.csv", "--mapping", "m.yaml", "--base-url", "http://127.0.0.1:9", "--state-dir", "state")


def test_missing_input(workdir: Path) -> None:
    fails_with(workdir, "ecdp-import: error: input file not found: nope.csv", "run", "nope.csv", "--mapping", "m.yaml")


def test_missing_api_key(workdir: Path) -> None:
    env = cli_env()
    del env["ECDP_API_KEY"]
    fails_with(workdir, "no API key: set ECDP_API_KEY or pass --api-key-file FILE", *RUN, env=env)
    fails_with(
        workdir,
        "cannot read the file given to --api-key-file: No such file",
        *RUN,
        "--api-key-file",
        "nokey.txt",
        env=env,
    )


def test_api_key_file_is_used(workdir: Path, mock: Any) -> None:
    (workdir / "key.txt").write_text(KEY + "\n")  # the mock accepts only this key
    env = cli_env()
    del env["ECDP_API_KEY"]
    run = ("run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state")
    result = run_cli(*run, "--api-key-file", "key.txt", cwd=workdir, env=env)
    assert result.returncode == 1, result.stderr  # row 2 is invalid
    assert [r["status"] for r in read_report(workdir / "in.report.csv")] == ["sent", "invalid", "sent"]
    assert len(mock.received()) == 2


def test_plain_http_refused_unless_loopback(workdir: Path) -> None:
    fails_with(
        workdir,
        "refusing plain http:// to api.ecdp.app",
        "run",
        "in.csv",
        "--mapping",
        "m.yaml",
        "--base-url",
        "http://api.ecdp.app",
    )
    fails_with(
        workdir, "--base-url must be an https:// URL", "run", "in.csv", "--mapping", "m.yaml", "--base-url", "ftp://x"
    )
    env = cli_env(ECDP_BASE_URL="http://192.168.1.5:8080")
    fails_with(workdir, "refusing plain http:// to 192.168.1.5", "run", "in.csv", "--mapping", "m.yaml", env=env)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("endpoint: customer\ncustomer: [unclosed\n", "m.yaml: not valid YAML at line 3, column 1"),
        (CUSTOMER_MAPPING + "extra_key: 1\n", "m.yaml: extra_key: unknown key 'extra_key'"),
        (CUSTOMER_MAPPING.replace("Money", "Currency"), "m.yaml: data_fields[0].type: unknown type 'Currency'"),
        (
            CUSTOMER_MAPPING.replace("column: total", "column: totl"),
            "m.yaml: column 'totl' (data_fields[0] (total)) not found in in.csv",
        ),
    ],
)
def test_mapping_errors_exit_2_with_the_problem_named(workdir: Path, mapping: str, message: str) -> None:
    (workdir / "m.yaml").write_text(mapping)
    fails_with(workdir, message, *RUN)
    fails_with(workdir, message, "validate", "in.csv", "--mapping", "m.yaml")


def test_undecodable_input_suggests_encoding(workdir: Path) -> None:
    (workdir / "in.csv").write_bytes("crm_id,email,total\nC1,zoë@example.com,1\n".encode("cp1252"))
    fails_with(workdir, "cannot decode as utf-8", *RUN)
    fails_with(workdir, "--encoding", *RUN)
    result = run_cli("validate", "in.csv", "--mapping", "m.yaml", "--encoding", "cp1252", cwd=workdir)
    assert result.returncode == 0, result.stderr


def test_bad_report_extension(workdir: Path) -> None:
    fails_with(workdir, "report file 'r.txt' must end in .csv, .jsonl or .parquet", *RUN, "--report", "r.txt")


def test_bad_option_values(workdir: Path) -> None:
    fails_with(workdir, "argument --concurrency: expected a positive integer, got '0'", *RUN, "--concurrency", "0")


def test_validate_needs_no_key_and_masks_shown_payloads(workdir: Path) -> None:
    env = cli_env()
    del env["ECDP_API_KEY"]
    result = run_cli(
        "validate", "in.csv", "--mapping", "m.yaml", "--show", "1", "--report", "v.csv", cwd=workdir, env=env
    )
    assert result.returncode == 1
    assert '"customerEmail":"u***@example.com"' in result.stdout
    assert "user1@example.com" not in result.stdout.lower()
    assert [r["status"] for r in read_report(workdir / "v.csv")] == ["valid", "invalid", "valid"]
    customers_csv(workdir / "ok.csv", 3)
    assert run_cli("validate", "ok.csv", "--mapping", "m.yaml", cwd=workdir, env=env).returncode == 0
    assert (workdir / "ok.validate.csv").exists()  # not the run's report name


def test_help_for_every_command(workdir: Path) -> None:
    for command in ("run", "validate", "mock-server"):
        result = run_cli(command, "--help", cwd=workdir)
        assert result.returncode == 0 and "usage: ecdp-import" in result.stdout
