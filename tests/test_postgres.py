"""The state in PostgreSQL (``--state-url``), what only a database store has to show: kill
-9 at random instants, two runs that share nothing but the database, several business
units in one database, faults of the server (unreachable, refused, restarted, slow), the
password kept out of everything, schema versions. Against a real server the suite starts
(``tests/pgserver.py``); no mock of PostgreSQL anywhere. The tests every store must pass
are in the modules that say ``pytestmark = pytest.mark.usefixtures("store")``."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.cli import main
from tests.conftest import CUSTOMER_MAPPING, KEY, Mock, cli_env, customers_csv, read_report
from tests.pgserver import PASSWORD, Server

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def pg(pg_server: Server) -> Server:
    return pg_server


@pytest.fixture
def schema() -> str:
    return f"p{uuid.uuid4().hex[:12]}"


def args(mock: Mock, pg: Server, schema: str, *extra: str, inputs: tuple[str, ...] = ("in.csv",)) -> list[str]:
    return [
        "run", *inputs, "--mapping", "m.yaml", "--base-url", mock.url, "--state-url", pg.url(),
        "--state-schema", schema, "--report", "r.csv", *extra,
    ]  # fmt: skip


def cli(*argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "importer", *argv],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "importer", *argv], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def delivered(*mocks: Mock) -> Counter[str]:
    return Counter(r["body"]["customerCrmId"] for m in mocks for r in m.received())


def sql(pg: Server, schema: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg.url(), autocommit=True) as db:
        db.execute(f"SET search_path TO {schema}")
        cur = db.execute(statement)
        return cur.fetchall() if cur.description else []


def rerun_resumes_exactly(work: Path, mock: Mock, pg: Server, schema: str, rows: int) -> None:
    """After a run stopped by a fault: the rerun sends each row once, loses none, and only
    rows truly on the wire (at most --concurrency 8) are unknown."""
    res = cli(*args(mock, pg, schema), cwd=work)
    assert res.returncode in (0, 75), res.stderr
    got = delivered(mock)
    assert max(got.values()) == 1
    unknown = {r["customer_ref"] for r in read_report(work / "r.csv") if r["status"] == "unknown"}
    assert len(unknown) <= 8
    assert {f"C{i}" for i in range(1, rows + 1)} - set(got) <= unknown


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    return tmp_path


def test_kill_9_at_random_instants_of_a_100k_row_run_loses_and_repeats_nothing(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    rows, kills, concurrency = 100_000, 10, 8
    customers_csv(work / "in.csv", rows)
    mock = mock_factory()
    rng = random.Random(23)
    for _ in range(kills):
        before = mock.stats()["requests"]
        proc = popen(*args(mock, pg, schema, "--concurrency", str(concurrency), "--no-progress"), cwd=work)
        # sending, not still starting (nor refused: a run killed a moment ago may still hold the lock)
        wait_for(lambda before=before, proc=proc: mock.stats()["requests"] > before or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    res = cli(*args(mock, pg, schema, "--no-progress"), cwd=work)
    assert res.returncode in (0, 75), res.stderr  # 75 while rows are unknown
    got = delivered(mock)
    assert max(got.values()) == 1, [ref for ref, n in got.items() if n > 1][:5]  # nothing twice
    report = read_report(work / "r.csv")
    assert len(report) == rows
    statuses = Counter(r["status"] for r in report)
    assert set(statuses) <= {"sent", "unknown"} and statuses["unknown"] <= kills * concurrency, statuses
    unknown = {r["customer_ref"] for r in report if r["status"] == "unknown"}
    assert {f"C{i}" for i in range(1, rows + 1)} - set(got) <= unknown  # nothing lost silently
    assert statuses["sent"] == len(got) - len(unknown & set(got))


def test_two_runs_sharing_only_the_database_one_sends_the_other_is_refused(
    tmp_path: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    mock = mock_factory("--latency-ms", "20")
    first, second = tmp_path / "pod-a", tmp_path / "pod-b"
    for pod in (first, second):
        pod.mkdir()
        (pod / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(first / "in.csv", 2000)
    shutil.copy(first / "in.csv", second / "in.csv")
    running = popen(*args(mock, pg, schema, "--concurrency", "4"), cwd=first)
    wait_for(lambda: mock.stats()["requests"] >= 20)
    refused = cli(*args(mock, pg, schema), cwd=second)
    assert refused.returncode == 2, refused.stderr
    assert "another ecdp-import run is using the state database" in refused.stderr
    assert "wait for it to finish" in refused.stderr and PASSWORD not in refused.stderr
    _, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    again = cli(*args(mock, pg, schema), cwd=second)  # the other pod, later: nothing left to send
    assert again.returncode == 0, again.stderr
    assert delivered(mock) == Counter({f"C{i}": 1 for i in range(1, 2001)})
    assert {r["status"] for r in read_report(second / "r.csv")} <= {"sent", "duplicate"}


def test_two_business_units_share_a_database_without_waiting_on_each_other(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    """Another API key or base URL is another target: its run is not refused, and its
    ledger is its own (the same events go to both)."""
    one, two = mock_factory("--latency-ms", "20"), mock_factory("--latency-ms", "20", name="two.jsonl")
    customers_csv(work / "in.csv", 600)
    running = [popen(*args(mock, pg, schema, "--concurrency", "4", "--report", f"r{i}.csv"), cwd=work) for i, mock in enumerate((one, two))]  # fmt: skip
    for proc in running:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert delivered(one) == delivered(two) == Counter({f"C{i}": 1 for i in range(1, 601)})


def test_an_unreachable_database_refused_password_or_missing_privilege_is_exit_2_naming_the_host(
    work: Path, mock: Mock, pg: Server, schema: str
) -> None:
    customers_csv(work / "in.csv", 10)
    with psycopg.connect(pg.url(), autocommit=True) as db:
        db.execute("DROP ROLE IF EXISTS reader")
        db.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-PW-4242'")  # no CREATE on the database
    closed = pg.url().replace(f":{pg.port}/", ":1/")
    cases = [
        (closed, "cannot connect to the state database postgresql://ecdp@127.0.0.1:1/postgres"),
        (pg.url(password="wrong-PW-1717"), "password authentication failed"),
        (pg.url(user="reader", password="reader-PW-4242"), f"cannot use the schema {schema} of the state database"),
    ]
    for url, words in cases:
        res = cli("run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-url", url,
                  "--state-schema", schema, cwd=work)  # fmt: skip
        assert res.returncode == 2, res.stderr
        assert words in res.stderr and "127.0.0.1" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 2, res.stderr
        for secret in (PASSWORD, "wrong-PW-1717", "reader-PW-4242"):
            assert secret not in res.stderr + res.stdout
    assert mock.stats()["requests"] == 0


def test_the_server_restarted_mid_run_stops_it_and_the_rerun_resumes_exactly(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    customers_csv(work / "in.csv", 3000)
    mock = mock_factory("--latency-ms", "10")
    proc = popen(*args(mock, pg, schema, "--concurrency", "8", "--no-progress"), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 200)
    pg.restart()
    restarted = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert time.monotonic() - restarted < 10
    assert "the state database postgresql://ecdp@127.0.0.1" in err and PASSWORD not in err
    sent_then = mock.stats()["requests"]
    assert sent_then < 3000
    rerun_resumes_exactly(work, mock, pg, schema, rows=3000)


def test_a_slow_database_slows_the_run_and_no_request_leaves_unrecorded(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    customers_csv(work / "in.csv", 1500)
    mock = mock_factory("--latency-ms", "5")
    proc = popen(*args(mock, pg, schema, "--concurrency", "8", "--no-progress"), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 100)
    held = threading.Event()
    during: list[int] = []

    def hold_the_rows_table() -> None:
        with psycopg.connect(pg.url()) as db:  # one transaction: the lock lasts until it ends
            db.execute(f"LOCK TABLE {schema}.rows IN EXCLUSIVE MODE")
            held.set()
            start = mock.stats()["requests"]
            time.sleep(3)
            during.append(mock.stats()["requests"] - start)

    locker = threading.Thread(target=hold_the_rows_table)
    locker.start()
    held.wait(10)
    locker.join(30)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert during and during[0] <= 8, during  # at most what was already marked when the lock came
    assert delivered(mock) == Counter({f"C{i}": 1 for i in range(1, 1501)})


def test_the_password_is_in_no_output_plan_line_summary_report_or_notification(
    work: Path, mock: Mock, pg: Server, schema: str
) -> None:
    customers_csv(work / "in.csv", 20)
    res = cli(*args(mock, pg, schema, "--summary-json", "s.json", "--metrics-file", "m.prom"), cwd=work)
    assert res.returncode == 0, res.stderr
    assert f"state database postgresql://ecdp@127.0.0.1:{pg.port}/postgres (schema {schema})" in res.stderr
    for text in (res.stdout, res.stderr, *(p.read_text() for p in work.iterdir() if p.is_file())):
        assert PASSWORD not in text
    status = cli("status", "--state-url", pg.url(), "--state-schema", schema, "--json", cwd=work)
    assert status.returncode == 0 and json.loads(status.stdout)[0]["counts"] == {"sent": 20}
    assert PASSWORD not in status.stdout + status.stderr


def test_an_internal_error_logs_no_password(work: Path, mock: Mock, pg: Server, schema: str, monkeypatch: Any) -> None:
    from importer import batch

    def buggy(self: Any, rows: Any) -> Any:
        raise ZeroDivisionError(f"a bug while talking to {pg.url()}")

    monkeypatch.setattr(batch.BatchRenderer, "render", buggy)
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    monkeypatch.setenv("ECDP_IMPORT_STATE_DIR", str(work / "local"))  # where errors.log goes
    monkeypatch.chdir(work)
    customers_csv(work / "in.csv", 5)
    assert main([*args(mock, pg, schema, "--no-progress"), "--state-dir", "elsewhere"]) == 2  # one place, not two
    assert main(args(mock, pg, schema, "--no-progress")) == 70
    log = (work / "local" / "errors.log").read_text()
    assert "ZeroDivisionError: a bug while talking to postgresql://ecdp:***" in log
    assert PASSWORD not in log


def test_a_schema_of_a_newer_version_is_refused_and_a_missing_driver_is_one_line(
    work: Path, mock: Mock, pg: Server, schema: str, monkeypatch: Any, capsys: Any
) -> None:
    customers_csv(work / "in.csv", 5)
    assert cli(*args(mock, pg, schema), cwd=work).returncode == 0
    sql(pg, schema, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    res = cli(*args(mock, pg, schema), cwd=work)
    assert res.returncode == 2 and "written by a newer ecdp-import (schema 99" in res.stderr, res.stderr
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    monkeypatch.chdir(work)
    assert main(args(mock, pg, schema, "--no-progress")) == 2
    err = capsys.readouterr().err
    assert "pip install 'ecdp-import[postgres]'" in err and "Traceback" not in err


def test_state_copy_moves_a_state_directory_and_its_ledger_into_postgresql(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    """A team moving its cron job into containers: what the state directory knows as sent
    stays sent (ledger included), what it left unfinished resumes, in the database."""
    mock = mock_factory()
    customers_csv(work / "a.csv", 300)
    local = ["--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state", "--report", "r.csv"]
    assert cli("run", "a.csv", *local, cwd=work).returncode == 0
    down = mock_factory("--fail-after", "100", name="down.jsonl", replacing=mock)
    customers_csv(work / "b.csv", 500)  # C1..C300 again (the ledger's), and 200 new, cut short by an outage
    assert cli("run", "b.csv", *local, "--max-attempts", "1", cwd=work).returncode == 75
    copied = cli("state", "copy", "--from", "state", "--to", pg.url(), "--state-schema", schema, cwd=work)
    assert copied.returncode == 0, copied.stderr
    assert f"copied state to postgresql://ecdp@127.0.0.1:{pg.port}/postgres (schema {schema}):" in copied.stdout
    assert PASSWORD not in copied.stdout + copied.stderr
    counts = dict(line.split() for line in copied.stdout.splitlines()[1:])
    assert counts["imports"] == "2" and int(counts["ledger"].replace(",", "")) >= 300
    assert int(counts["rows"].replace(",", "")) >= 600
    again = cli("state", "copy", "--from", "state", "--to", pg.url(), "--state-schema", schema, cwd=work)
    assert again.returncode == 2 and "already holds imports" in again.stderr
    healthy = mock_factory(name="healthy.jsonl", replacing=down)
    res = cli(*args(healthy, pg, schema, inputs=("b.csv",)), cwd=work)
    assert res.returncode == 0, res.stderr
    assert delivered(mock, down, healthy) == Counter({f"C{i}": 1 for i in range(1, 501)})
    statuses = Counter(r["status"] for r in read_report(work / "r.csv"))
    assert statuses == {"duplicate": 300, "sent": 200}, statuses
    assert cli(*args(healthy, pg, schema, inputs=("a.csv",)), cwd=work).returncode == 0  # resumed: nothing to send
    assert len(healthy.received()) == 200 - len(down.received())


def _server_processes(pg: Server) -> list[int]:
    """The postmaster of ``pg`` and every process it started (the sessions' backends)."""
    postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    return [postmaster, *map(int, children)]


def test_a_server_that_stops_answering_stops_the_run_within_the_deadline_and_the_rerun_resumes(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    """A hung server (every process of it stopped: TCP still up, nothing answers) must not
    hang the run: sending stops, SIGTERM is heard, the run ends with exit 3 after the
    statement deadline; nothing it sent meanwhile is unrecorded."""
    customers_csv(work / "in.csv", 3000)
    mock = mock_factory("--latency-ms", "10")
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", *args(mock, pg, schema, "--concurrency", "8", "--no-progress")],
        cwd=work, env=cli_env(ECDP_IMPORT_STATE_DEADLINE="3"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for(lambda: mock.stats()["requests"] >= 200)
    stopped = _server_processes(pg)
    try:
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        hung = time.monotonic()
        time.sleep(0.5)
        at_stop = mock.stats()["requests"]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - hung
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert proc.returncode == 3, err
    assert "no answer from the server in 3 s" in err and PASSWORD not in err and "Traceback" not in err
    assert took < 30
    assert mock.stats()["requests"] - at_stop <= 8  # only what was already on the wire
    rerun_resumes_exactly(work, mock, pg, schema, rows=3000)


def test_the_schema_dropped_mid_run_is_exit_3_not_a_crash(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    customers_csv(work / "in.csv", 3000)
    mock = mock_factory("--latency-ms", "10")
    proc = popen(*args(mock, pg, schema, "--concurrency", "8", "--no-progress"), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 200)
    sql(pg, "public", f"DROP SCHEMA {schema} CASCADE")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "stopped sending" in err and "Traceback" not in err and "internal error" not in err
    assert mock.stats()["requests"] < 3000


def test_status_of_a_missing_schema_says_so_and_creates_nothing(work: Path, pg: Server, schema: str) -> None:
    res = cli("status", "--state-url", pg.url(), "--state-schema", schema, cwd=work)
    assert res.returncode == 2 and "no ecdp-import state in the state database" in res.stderr, res.stderr
    prune = cli("prune", "--older-than", "1d", "--state-url", pg.url(), "--state-schema", schema, cwd=work)
    assert prune.returncode == 2, prune.stderr
    assert sql(pg, "public", f"SELECT 1 FROM information_schema.schemata WHERE schema_name = '{schema}'") == []


def test_a_second_process_opening_a_current_schema_takes_no_table_lock(
    work: Path, mock: Mock, pg: Server, schema: str
) -> None:
    """``CREATE INDEX IF NOT EXISTS`` locks its table even when the index exists: run on
    every start, it waited on (and deadlocked with) a run going on. A current schema is only read."""
    customers_csv(work / "in.csv", 10)
    assert cli(*args(mock, pg, schema), cwd=work).returncode == 0
    with psycopg.connect(pg.url()) as db:  # a run's writes, in a transaction that stays open
        db.execute(f"LOCK TABLE {schema}.rows, {schema}.imports, {schema}.ledger IN ROW EXCLUSIVE MODE")
        status = cli("status", "--state-url", pg.url(), "--state-schema", schema, "--json", cwd=work, timeout=20)
    assert status.returncode == 0 and json.loads(status.stdout)[0]["counts"] == {"sent": 10}, status.stderr


def test_urls_libpq_takes_are_shown_without_their_password_and_a_keyword_string_is_refused_unechoed(
    work: Path, mock: Mock, pg: Server, schema: str
) -> None:
    customers_csv(work / "in.csv", 5)
    two_hosts = pg.url().replace("@127.0.0.1:", "@127.0.0.1:1,127.0.0.1:")  # libpq tries each in turn
    res = cli(*[two_hosts if a == pg.url() else a for a in args(mock, pg, schema)], cwd=work)
    assert res.returncode == 0, res.stderr
    assert f"state database postgresql://ecdp@127.0.0.1:1,127.0.0.1:{pg.port}/postgres (schema {schema})" in res.stderr
    for spelled in (
        f"host=127.0.0.1 port={pg.port} user=ecdp password={PASSWORD}",  # a libpq keyword string
        pg.url().replace(f":{pg.port}/", ":notaport/"),
        pg.url().replace("/postgres", "/postgres?sslmode=bogus"),
    ):
        bad = cli(*[spelled if a == pg.url() else a for a in args(mock, pg, schema)], cwd=work)
        assert bad.returncode == 2, bad.stderr
        assert PASSWORD not in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    env = cli_env(ECDP_IMPORT_STATE_URL=pg.url(), ECDP_IMPORT_STATE_DIR=str(work / "st"))
    both = subprocess.run(
        [sys.executable, "-m", "importer", "run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert both.returncode == 2 and "name two places for the state" in both.stderr
    assert mock.stats()["requests"] == 5  # the first run's only


@given(password=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=4, max_size=30))
def test_no_spelling_of_a_password_survives_in_the_shown_url(password: str) -> None:
    from urllib.parse import quote

    from importer.postgres import shown_url, url_secrets

    for url in (
        f"postgresql://ecdp:{quote(password, safe='')}@db.example:5432/state",
        f"postgresql://ecdp@db.example/state?password={quote(password, safe='')}&sslmode=require",
    ):
        shown = shown_url(url)
        assert shown.startswith("postgresql://ecdp@db.example") and shown.endswith("/state")
        assert quote(password, safe="") not in shown or quote(password, safe="") in "ecdp@db.example:5432/state"
        assert password in url_secrets(url)


def test_passwords_libpq_reads_past_a_hash_or_question_mark_are_secrets_and_repr_hides_the_url() -> None:
    from importer.config import RunConfig
    from importer.postgres import shown_url, url_secrets

    for url, password in (
        ("postgresql://u:pa#ss?word@h:5/db", "pa#ss?word"),  # libpq: the user information ends at @ or /
        ("postgresql://u:p%40ss@h/db", "p@ss"),
        ("host=h password='my big secret' user=u", "my big secret"),  # a keyword string given by mistake
    ):
        assert password in url_secrets(url)
        assert password not in shown_url(url)
    assert url_secrets("postgresql://u:abc@h/db") == []  # too short to take out of every message
    assert "ghijk" not in shown_url("postgresql://u:abcdef@ghijk@h/db")  # an @ not %-encoded
    config = RunConfig(inputs=("a.csv",), mapping="m.yaml", api_key="k" * 20, state_url="postgresql://u:topsecret@h/db")
    assert "topsecret" not in repr(config)


def test_prune_is_refused_while_a_run_holds_the_schema_and_a_run_while_prune_does(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    """A row pruned under a run could be sent twice: prune takes the schema's lock whole,
    a run takes it shared (and its target's own)."""
    customers_csv(work / "in.csv", 2000)
    mock = mock_factory("--latency-ms", "20")
    proc = popen(*args(mock, pg, schema, "--concurrency", "4", "--no-progress"), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 50)
    prune = cli("prune", "--older-than", "0h", "--state-url", pg.url(), "--state-schema", schema, cwd=work)
    assert prune.returncode == 2 and "prune when no run is going on" in prune.stderr, prune.stderr
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    with psycopg.connect(pg.url(), autocommit=True) as db:  # as prune holds it
        space = sql(pg, schema, "SELECT 1")  # the schema exists
        assert space == [(1,)]
        from importer.postgres import _lock_space

        assert db.execute("SELECT pg_try_advisory_lock(%s, 0)", (_lock_space(schema),)).fetchone()[0]
        res = cli(*args(mock, pg, schema), cwd=work)
    assert res.returncode == 2 and "is being pruned" in res.stderr, res.stderr


def test_a_read_past_the_deadline_stops_the_run_with_its_summary_and_report(
    work: Path, mock_factory: Any, pg: Server, schema: str
) -> None:
    """The ledger held by another session past the deadline: whether a commit or a look-up
    the rows wait on meets it, the run stops as from any store fault (exit 3, a summary,
    --summary-json, the report once the lock is gone), not with a bare error line."""
    customers_csv(work / "in.csv", 3000)
    mock = mock_factory("--latency-ms", "10")
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", *args(mock, pg, schema, "--concurrency", "8", "--summary-json", "s.json")],
        cwd=work, env=cli_env(ECDP_IMPORT_STATE_DEADLINE="2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for(lambda: mock.stats()["requests"] >= 200)
    with psycopg.connect(pg.url()) as db:
        db.execute(f"LOCK TABLE {schema}.ledger IN ACCESS EXCLUSIVE MODE")
        time.sleep(4)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "no answer from the server in 2 s" in err and "Traceback" not in err
    assert "run: 3,000 rows" in out and json.loads((work / "s.json").read_text())["exit_code"] == 3
    report = read_report(work / "r.csv")
    statuses = Counter(r["status"] for r in report)
    got = delivered(mock)
    assert len(report) == 3000 and max(got.values()) == 1
    assert statuses["sent"] <= len(got) <= statuses["sent"] + statuses["unknown"] and statuses["unknown"] <= 8


def test_a_deadline_that_is_not_seconds_is_one_line_exit_2(work: Path, mock: Mock, pg: Server, schema: str) -> None:
    customers_csv(work / "in.csv", 3)
    for bad in ("soon", "0", "-1", "nan", "inf"):
        res = subprocess.run(
            [sys.executable, "-m", "importer", *args(mock, pg, schema)], cwd=work,
            env=cli_env(ECDP_IMPORT_STATE_DEADLINE=bad), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 2 and "$ECDP_IMPORT_STATE_DEADLINE takes seconds" in res.stderr, res.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "importer", "run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url,
         "--state-dir", "st"], cwd=work, env=cli_env(ECDP_IMPORT_STATE_DEADLINE="soon"), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr  # a state directory has no use for it
    assert mock.stats()["requests"] == 3


def _fresh_schema(db: Any, name: str) -> None:
    from importer.postgres import DDL

    db.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    db.execute(f"CREATE SCHEMA {name}")
    db.execute(f"SET search_path TO {name}")
    db.execute(DDL)


def _tables(db: Any, name: str) -> tuple[list[Any], list[Any]]:
    db.execute(f"SET search_path TO {name}")
    rows = db.execute("SELECT * FROM rows ORDER BY import_id, row_number").fetchall()
    ledger = db.execute("SELECT * FROM ledger ORDER BY target_id, identity").fetchall()
    return rows, ledger


_OP = st.tuples(
    st.sampled_from(["start", "finish", "unsent"]), st.integers(0, 12), st.sampled_from([None, "a", "é\x01'"])
)
_CLAIM = st.tuples(st.sampled_from([1, 2]), st.binary(min_size=1, max_size=2), st.integers(0, 12))


@given(batches=st.lists(st.tuples(st.lists(_OP, max_size=12), st.lists(_CLAIM, max_size=4)), min_size=1, max_size=5))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_commit_as_one_statement_writes_what_the_writes_one_by_one_in_order_write(
    pg_server: Server, batches: list[Any]
) -> None:
    """The commit's one statement over arrays (``_one_statement``) against its meaning,
    the journal's statements one at a time in their order; where a batch writes a row or
    claims an identity twice, it must decline (the pipeline keeps the order then)."""
    from importer.journal import _FINISH, _LEDGER, _START, _UNSENT
    from importer.postgres import _one_statement

    with psycopg.connect(pg_server.url(), autocommit=True) as db:
        _fresh_schema(db, "one_statement")
        _fresh_schema(db, "one_by_one")
        marked: set[int] = set()
        for ops, claims in batches:
            pending: list[tuple[str, tuple[Any, ...]]] = []
            for kind, row, text in ops:
                if kind == "start":
                    pending.append((_START, (7, row, text)))
                elif kind == "unsent":
                    pending.append((_UNSENT, (7, row, "invalid", text, "ref")))
                elif row in marked:  # an outcome follows its committed mark
                    pending.append((_FINISH, ("rejected", 400, text, text, 7, row)))
            ledger = [(target, identity, 7, row) for target, identity, row in claims]
            one = _one_statement(pending, ledger)
            keys = [(p[-2], p[-1]) if sql == _FINISH else p[:2] for sql, p in pending]
            repeats = len(set(keys)) < len(keys) or len({c[:2] for c in ledger}) < len(ledger)
            assert (one is None) == (repeats or not (pending or ledger))
            db.execute("SET search_path TO one_by_one")
            with db.transaction():
                for entry in ledger:
                    db.execute(_LEDGER.replace("?", "%s"), entry)
                for sql, params in pending:
                    db.execute(sql.replace("?", "%s"), params)
            db.execute("SET search_path TO one_statement")
            if one is not None:
                db.execute(*one)
            else:  # the order kept: the reference's writes again
                with db.transaction():
                    for entry in ledger:
                        db.execute(_LEDGER.replace("?", "%s"), entry)
                    for sql, params in pending:
                        db.execute(sql.replace("?", "%s"), params)
            marked.update(p[1] for sql, p in pending if sql in (_START, _UNSENT))
            assert _tables(db, "one_statement") == _tables(db, "one_by_one")


def test_the_ledger_look_up_reads_keys_not_whole_tables(pg_server: Server, schema: str) -> None:
    """Each identity of a look-up is one read of the ledger's key and one of the row's,
    however many rows the tables hold: the planner, free to, flattened the lateral
    subqueries into hash joins over both tables whole (350 ms a batch at 30k rows, and
    growing with them)."""
    from importer.postgres import _HOLDERS_PG

    identities = [i.to_bytes(16, "big") for i in range(20_000)]
    with psycopg.connect(pg_server.url(), autocommit=True) as db:
        _fresh_schema(db, schema)
        db.execute("INSERT INTO imports (path, fingerprint, size, created_at, target_id) VALUES ('p', 'f', 1, 'x', 1)")
        db.execute(
            "INSERT INTO ledger SELECT 1, i, 1, n FROM unnest(%s::bytea[], %s::bigint[]) AS t(i, n)",
            (identities, list(range(20_000))),
        )
        db.execute(
            "INSERT INTO rows (import_id, row_number, status) SELECT 1, n, 'sent' FROM generate_series(0, 19999) n"
        )
        probe = identities[:125] + [os.urandom(16) for _ in range(125)]
        plan = db.execute("EXPLAIN (FORMAT JSON) " + _HOLDERS_PG.replace("?", "%s"), (probe, 1)).fetchone()[0]
        found = db.execute(_HOLDERS_PG.replace("?", "%s"), (probe, 1)).fetchall()
    nodes: list[dict[str, Any]] = []
    todo = [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    scanned = {n.get("Relation Name") for n in nodes if n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan")}
    assert not scanned & {"ledger", "rows"}, scanned
    assert not [n for n in nodes if n["Node Type"] in ("Hash Join", "Merge Join")]
    assert sorted(bytes(r[0]) for r in found) == identities[:125]
