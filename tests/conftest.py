"""Shared fixtures: the real mock server as a process on loopback, and a CLI runner."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from importer.mockserver import spawn

KEY = "canary-KEY-7f3a9c1e-do-not-leak"

# CI replays the same examples every run, so a landing never hinges on a lucky draw;
# locally hypothesis keeps exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Mock:
    """A running ``ecdp-import mock-server`` process."""

    proc: subprocess.Popen[str]
    url: str
    record: Path

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_mock/stats", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def received(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def start_mock(tmp_path: Path, *args: str, name: str = "received.jsonl") -> Mock:
    record = tmp_path / name
    proc, url = spawn("--api-key", KEY, "--record", str(record), *args, cwd=str(ROOT))
    return Mock(proc, url, record)


@pytest.fixture
def mock_factory(tmp_path: Path) -> Iterator[Any]:
    """Starts mock servers. ``replacing=old`` stops ``old`` and starts the new one on its
    port: the same base URL, so the same target (an API that was down and is back),
    where a server on another port is another target with a ledger of its own."""
    started: list[Mock] = []

    def factory(*args: str, name: str = "received.jsonl", replacing: Mock | None = None) -> Mock:
        if replacing is not None:
            replacing.stop()
            args = ("--port", replacing.url.rsplit(":", 1)[1], *args)
        mock = start_mock(tmp_path, *args, name=name)
        started.append(mock)
        return mock

    yield factory
    for mock in started:
        mock.stop()


@pytest.fixture
def mock(mock_factory: Any) -> Mock:
    return mock_factory()  # type: ignore[no-any-return]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECDP_")}
    env["ECDP_API_KEY"] = KEY
    if STORE["url"]:  # a run without --state-dir keeps its state in this test's database
        env["ECDP_IMPORT_STATE_URL"] = STORE["url"]
        env["ECDP_IMPORT_STATE_SCHEMA"] = schema_for("default")
    env.update(extra)
    return env


# --- the state store under test ---------------------------------------------------------------
# Modules that say ``pytestmark = pytest.mark.usefixtures("store")`` run every test twice:
# with the state directory (SQLite), and with PostgreSQL, where each ``--state-dir DIR`` of
# the CLI becomes ``--state-url URL --state-schema S``, one schema per directory and test:
# two state directories stay two states, exactly as on disk.
STORE: dict[str, str | None] = {"url": None, "test": None}


def schema_for(state_dir: str) -> str:
    digest = hashlib.blake2b(state_dir.encode(), digest_size=4).hexdigest()
    return f"{STORE['test']}_{digest}"


def with_store(args: tuple[str, ...] | list[str]) -> list[str]:
    """``args`` with every ``--state-dir DIR`` turned into this test's PostgreSQL schema."""
    out = list(args)
    if not STORE["url"]:
        return out
    for i, arg in enumerate(out):
        if arg == "--state-dir" and i + 1 < len(out):
            out[i : i + 2] = ["--state-url", str(STORE["url"]), "--state-schema", schema_for(out[i + 1])]
            return with_store(out)
        if arg.startswith("--state-dir="):
            out[i : i + 1] = ["--state-url", str(STORE["url"]), "--state-schema", schema_for(arg.split("=", 1)[1])]
            return with_store(out)
    return out


def state_sql(work: Path, state_dir: str, sql: str) -> None:
    """Run ``sql`` on the store of ``--state-dir STATE_DIR`` (the test's own hand on it: to
    age imports for prune, say), whichever store is under test."""
    if STORE["url"]:
        import psycopg

        with psycopg.connect(str(STORE["url"]), autocommit=True) as db:
            db.execute(f"SET search_path TO {schema_for(state_dir)}")
            db.execute(sql.replace("%", "%%"), [])
        return
    import sqlite3

    db = sqlite3.connect(work / state_dir / "journal.sqlite3")
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    from tests import pgserver

    try:
        server = pgserver.start()
    except pgserver.Unavailable as exc:
        pytest.skip(f"the PostgreSQL store is not tested here: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgres":
        if request.node.get_closest_marker("sqlite_only"):
            pytest.skip("SQLite only: a state directory's own matter")
        server = request.getfixturevalue("pg_server")
        STORE.update(url=server.url(), test=f"t{uuid.uuid4().hex[:12]}")
        try:
            yield "postgres"
        finally:
            STORE.update(url=None, test=None)
    else:
        yield "sqlite"


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m importer ARGS`` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "importer", *with_store(args)],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "importer", *with_store(args)],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


CUSTOMER_MAPPING = """\
endpoint: customer
custom_event_id: 77
customer:
  crm_id: crm_id
  email: email
data_fields:
  - {name: total, type: Money, column: total}
"""


def customers_csv(path: Path, n: int, bad: tuple[int, ...] = ()) -> Path:
    """``n`` rows, crm ids C1..Cn; rows in ``bad`` carry an invalid email."""
    rows = []
    for i in range(1, n + 1):
        email = "broken-email" if i in bad else f"User{i}@Example.com"
        rows.append([f"C{i}", email, f"{i}.5"])
    return write_csv(path, ["crm_id", "email", "total"], rows)


def run_args(mock: Mock, *extra: str, state: str = "state") -> list[str]:
    """`run in.csv --mapping m.yaml` against ``mock``, state in ``state``, report r.csv."""
    return [
        "run",
        "in.csv",
        "--mapping",
        "m.yaml",
        "--base-url",
        mock.url,
        "--state-dir",
        state,
        "--report",
        "r.csv",
        *extra,
    ]
