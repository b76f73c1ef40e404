"""Faults in our own machinery (issue 9): the state directory, signals, the rate limit
after a pause, proxies and TLS. Real processes, real signals, a real tmpfs, a real local
HTTPS server with its own CA and a real forward proxy on loopback."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from importer.cli import main
from tests.conftest import (
    CUSTOMER_MAPPING,
    KEY,
    Mock,
    cli_env,
    customers_csv,
    popen_cli,
    read_report,
    run_args,
    run_cli,
    start_mock,
)


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def delivered(mock: Mock) -> Counter[str]:
    return Counter(r["body"]["customerCrmId"] for r in mock.received())


def other_events(path: Path, n: int, prefix: str = "N") -> None:
    """``n`` rows whose events differ from ``customers_csv``'s (the ledger would hold those)."""
    customers_csv(path, n)
    path.write_text(path.read_text().replace("C", prefix))  # crm ids C1.. become N1..; the header has no C


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 300)
    return tmp_path


# --- 1: a stable default state directory -----------------------------------------------------


def test_default_state_dir_is_per_user_not_per_working_directory(work: Path, mock: Mock) -> None:
    env = cli_env(XDG_STATE_HOME=str(work / "xdg"))
    (work / "a").mkdir()
    (work / "b").mkdir()
    common = [
        str(work / "in.csv"),
        "--mapping",
        str(work / "m.yaml"),
        "--base-url",
        mock.url,
        "--report",
        str(work / "r.csv"),
    ]
    first = run_cli("run", *common, cwd=work / "a", env=env)
    assert first.returncode == 0, first.stderr
    assert f"state directory {work / 'xdg' / 'ecdp-import'}" in first.stderr
    second = run_cli("run", *common, cwd=work / "b", env=env)  # the same cron job from elsewhere
    assert second.returncode == 0, second.stderr
    assert mock.stats()["requests"] == 300


def test_an_existing_working_directory_state_dir_is_still_used(work: Path, mock: Mock) -> None:
    env = cli_env(XDG_STATE_HOME=str(work / "xdg"))
    legacy = run_cli(
        "run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", ".ecdp-import", cwd=work
    )
    assert legacy.returncode == 0
    again = run_cli("run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url, cwd=work, env=env)
    assert again.returncode == 0, again.stderr
    assert "using the state directory .ecdp-import found in the working directory" in again.stderr
    assert mock.stats()["requests"] == 300


# --- 2: a full disk --------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "tiny"
    where.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(where)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_disk_filling_up_mid_run_stops_it_and_the_rerun_loses_and_repeats_nothing(
    work: Path, mock_factory: Any, tiny_fs: Path
) -> None:
    customers_csv(work / "in.csv", 6000)
    mock = mock_factory("--latency-ms", "2")
    state = str(tiny_fs / "state")
    started = time.monotonic()
    res = run_cli(*run_args(mock, "--concurrency", "8", state=state), cwd=work, timeout=60)
    assert time.monotonic() - started < 30
    assert res.returncode == 3, res.stderr
    assert "state directory: database or disk is full" in res.stderr and "Traceback" not in res.stderr
    sent_then = mock.stats()["requests"]
    assert 0 < sent_then < 6000
    # The failed run's own report: every row once, those whose answers could not be recorded
    # unknown (never the journal's own "inflight"), nothing received left unmentioned.
    stopped = read_report(work / "r.csv")
    assert [int(r["row_number"]) for r in stopped] == list(range(1, 6001))
    own = Counter(r["status"] for r in stopped)
    assert set(own) <= {"sent", "unknown", "not_attempted"} and own["unknown"] <= 8, own
    assert {r["customer_ref"] for r in stopped if r["status"] != "not_attempted"} >= set(delivered(mock))
    subprocess.run(["mount", "-o", "remount,size=20m", str(tiny_fs)], check=True)
    rerun = run_cli(*run_args(mock, state=state), cwd=work)
    assert rerun.returncode in (0, 75), rerun.stderr  # 75 while rows are unknown
    report = {r["customer_ref"]: r["status"] for r in read_report(work / "r.csv")}
    got = delivered(mock)
    assert max(got.values()) == 1  # nothing twice
    unknown = {ref for ref, status in report.items() if status == "unknown"}
    assert len(unknown) <= 8
    assert {f"C{i}" for i in range(1, 6001)} - set(got) <= unknown  # nothing lost silently


def test_a_full_disk_at_start_is_a_clear_abort(work: Path, mock: Mock, tiny_fs: Path) -> None:
    with (tiny_fs / "filler").open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass  # the disk is full
    res = run_cli(*run_args(mock, state=str(tiny_fs / "state")), cwd=work)
    assert res.returncode == 3, res.stderr
    assert "No space left on device" in res.stderr or "database or disk is full" in res.stderr
    assert "Traceback" not in res.stderr and mock.stats()["requests"] == 0


def test_a_report_the_disk_has_no_room_for_is_no_bug_and_a_rerun_writes_it(
    work: Path, mock: Mock, tiny_fs: Path
) -> None:
    customers_csv(work / "in.csv", 2000)  # a report of about 70 KiB
    (tiny_fs / "filler").write_bytes(b"\0" * 260_000)  # the disk has less than that left
    report = str(tiny_fs / "r.csv")
    args = ["run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state", "--report", report]
    res = run_cli(*args, cwd=work)
    assert res.returncode == 3, res.stderr
    assert f"cannot write {report} (No space left on device)" in res.stderr and "internal error" not in res.stderr
    assert mock.stats()["requests"] == 2000 and not list(tiny_fs.glob(".*partial"))
    (tiny_fs / "filler").unlink()
    again = run_cli(*args, cwd=work)
    assert again.returncode == 0, again.stderr
    assert mock.stats()["requests"] == 2000 and len(read_report(Path(report))) == 2000


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (sqlite3.OperationalError("database or disk is full"), "database or disk is full"),
        (RuntimeError("a bug"), "RuntimeError: a bug"),  # not a store's error: still nobody hangs
    ],
)
def test_a_failing_commit_releases_every_waiter_and_reports_the_fault(
    tmp_path: Path, error: Exception, said: str
) -> None:
    """Without a tmpfs: a connection whose COMMIT fails, as SQLite's does on a full disk."""
    from importer.errors import JournalFault
    from importer.journal import Journal
    from importer.sender import Job

    journal = Journal(str(tmp_path / "state"))
    real = journal.db

    class FullDisk:
        in_transaction = True

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "COMMIT":
                raise error
            return real.execute(sql, *args)

        def executemany(self, sql: str, rows: Any) -> Any:
            return real.executemany(sql, rows)

    import_id = journal.resolve_import(tmp_path, "f" * 64, 1, False)
    journal.db = FullDisk()  # type: ignore[assignment]
    faults: list[JournalFault] = []
    journal.on_fault = faults.append

    async def go() -> list[Any]:
        return await asyncio.gather(
            *(journal.started(Job((import_id, n), b"{}", "r")) for n in range(5)), return_exceptions=True
        )

    results = asyncio.run(asyncio.wait_for(go(), 5))
    assert all(isinstance(r, JournalFault) for r in results)
    assert len(faults) == 1 and said in str(faults[0])
    journal.db = real
    journal.close()


# --- 3: a journal that cannot be trusted -----------------------------------------------------


def finished_state(work: Path, mock: Mock) -> Path:
    assert run_cli(*run_args(mock), cwd=work).returncode == 0
    return work / "state"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "corrupt pages", "directory", "zero bytes", "deleted"])
def test_a_damaged_journal_stops_the_run_before_anything_is_sent(work: Path, mock: Mock, damage: str) -> None:
    state = finished_state(work, mock)
    journal = state / "journal.sqlite3"
    data = journal.read_bytes()
    customers_csv(work / "in.csv", 301)  # new content: a healthy journal would send it
    if damage == "garbage":
        journal.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        journal.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt pages":
        journal.write_bytes(data[:4096] + os.urandom(len(data) - 8192) + data[-4096:])
    elif damage == "directory":
        journal.unlink()
        journal.mkdir()
    elif damage == "zero bytes":
        journal.write_bytes(b"")
    else:
        journal.unlink()
    before = mock.stats()["requests"]
    res = run_cli(*run_args(mock), cwd=work)
    assert res.returncode == 2, res.stderr
    assert "cannot be trusted" in res.stderr and "Traceback" not in res.stderr
    assert mock.stats()["requests"] == before


def test_a_journal_from_another_state_directory_is_refused(work: Path, mock: Mock) -> None:
    state = finished_state(work, mock)
    other = run_cli(*run_args(mock, state="other"), cwd=work)
    assert other.returncode == 0
    shutil.copy(work / "other" / "journal.sqlite3", state / "journal.sqlite3")
    res = run_cli(*run_args(mock), cwd=work)
    assert res.returncode == 2 and "belongs to another state directory" in res.stderr


def test_a_write_ahead_log_deleted_after_kill_9_is_refused(work: Path, mock_factory: Any) -> None:
    mock = mock_factory("--latency-ms", "15")
    proc = popen_cli(*run_args(mock), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    wal = work / "state" / "journal.sqlite3-wal"
    assert wal.exists()
    wal.unlink()
    before = mock.stats()["requests"]
    res = run_cli(*run_args(mock), cwd=work)
    assert res.returncode == 2 and "write-ahead log" in res.stderr, res.stderr
    assert mock.stats()["requests"] == before


@pytest.mark.parametrize("what", ["journal", "state directory"])
def test_deleting_the_journal_mid_run_stops_it(work: Path, mock_factory: Any, what: str) -> None:
    customers_csv(work / "in.csv", 3000)
    mock = mock_factory("--latency-ms", "10")
    proc = popen_cli(*run_args(mock), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 100)
    if what == "journal":
        (work / "state" / "journal.sqlite3").unlink()
    else:
        shutil.rmtree(work / "state")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "was deleted or replaced while the run was going on" in err
    assert "restored from the run's open connection" in err
    assert mock.stats()["requests"] < 3000
    stopped = Counter(r["status"] for r in read_report(work / "r.csv"))
    assert stopped["sent"] == mock.stats()["requests"] and stopped["unknown"] == 0, stopped
    # The journal was written back as the run ended: the rerun sends exactly the rest.
    res = run_cli(*run_args(mock), cwd=work)
    assert res.returncode == 0, res.stderr
    sent = Counter(r["body"]["customerCrmId"] for r in mock.received())
    assert sent == Counter({f"C{i}": 1 for i in range(1, 3001)})


def test_a_journal_replaced_mid_run_is_not_overwritten(work: Path, mock_factory: Any) -> None:
    customers_csv(work / "in.csv", 3000)
    mock = mock_factory("--latency-ms", "10")
    proc = popen_cli(*run_args(mock), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 100)
    journal = work / "state" / "journal.sqlite3"
    (work / "other").write_bytes(b"someone else's file")
    os.replace(work / "other", journal)  # another file in its place, never a moment without one
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3 and "restored" not in err, err
    assert journal.read_bytes() == b"someone else's file"


# --- 4: durability -----------------------------------------------------------------------------


def test_in_flight_marks_are_fsynced_unless_no_fsync(tmp_path: Path) -> None:
    from importer.journal import Journal

    for durable, level in ((True, 2), (False, 1)):
        journal = Journal(str(tmp_path / f"s{durable}"), durable=durable)
        assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == level  # FULL / NORMAL
        journal.close()


# --- 5, 6: retry waits and paths ---------------------------------------------------------------


def test_rows_waiting_out_a_backoff_are_not_unknown_after_kill_9(work: Path, mock_factory: Any) -> None:
    throttled = mock_factory("--fail-429", "1.0", "--retry-after", "30", name="throttled.jsonl")
    proc = popen_cli(*run_args(throttled, "--concurrency", "4"), cwd=work)
    wait_for(lambda: throttled.stats()["requests"] >= 4)
    time.sleep(0.3)  # every answer is in: the rows now wait out Retry-After
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    healthy = mock_factory()
    res = run_cli(*run_args(healthy), cwd=work)
    assert res.returncode == 0, res.stderr
    statuses = Counter(r["status"] for r in read_report(work / "r.csv"))
    assert statuses == {"sent": 300}
    assert len(healthy.received()) == 300


def test_resuming_from_a_copy_does_not_re_home_the_import(work: Path, mock_factory: Any) -> None:
    (work / "drop").mkdir()
    (work / "tmp").mkdir()
    customers_csv(work / "drop" / "events.csv", 100)
    shutil.copy(work / "drop" / "events.csv", work / "tmp" / "events.csv")
    mock = mock_factory("--fail-after", "30")
    for path in ("drop/events.csv", "tmp/events.csv"):
        res = run_cli(
            "run", path, "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state",
            "--max-attempts", "1", "--backoff-base", "0.01", cwd=work,
        )  # fmt: skip
        assert res.returncode == 75, res.stderr  # the breaker: the import is unfinished
    customers_csv(work / "drop" / "events.csv", 101)  # the original is edited
    res = run_cli(
        "run", "drop/events.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state", cwd=work
    )
    assert res.returncode == 2 and "unfinished" in res.stderr


# --- 7: internal errors ------------------------------------------------------------------------


def test_an_internal_error_exits_70_with_one_line_a_log_and_the_report(
    work: Path, mock: Mock, monkeypatch: Any, capsys: Any
) -> None:
    from importer import batch, source

    calls = {"n": 0}
    real = batch.BatchRenderer.render

    def buggy(self: Any, rows: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 6:  # rows 251-300: the first 250 were queued (and most sent) by then
            raise ZeroDivisionError(f"a bug near {KEY} and John.Doe@example.com")  # a message quoting both
        return real(self, rows)

    monkeypatch.setattr(source, "STAMP_EVERY", 50)  # batches of 50 rows
    monkeypatch.setattr(batch.BatchRenderer, "render", buggy)
    monkeypatch.setenv("ECDP_API_KEY", KEY)
    monkeypatch.chdir(work)
    code = main(run_args(mock, "--no-progress"))
    err = capsys.readouterr().err
    assert code == 70
    assert "internal error (a bug in ecdp-import, not in your input): ZeroDivisionError: a bug near *** and " in err
    assert "Traceback" not in err
    log = (work / "state" / "errors.log").read_text()
    assert "ZeroDivisionError: a bug near *** and J***@example.com" in log and "Traceback" in log
    for text in (err, log):
        assert KEY not in text and "john.doe@example.com" not in text.lower()
    report = read_report(work / "r.csv")
    assert len(report) == 300 and Counter(r["status"] for r in report)["sent"] >= 100


# --- 8-10: signals and rate limits --------------------------------------------------------------


def test_sigterm_ends_a_run_waiting_for_the_rate_limiter_within_two_seconds(work: Path, mock: Mock) -> None:
    proc = popen_cli(*run_args(mock, "--rate-limit", "0.02"), cwd=work)
    wait_for(lambda: mock.stats()["requests"] >= 1)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 143, err
    assert "unknown" not in {r["status"] for r in read_report(work / "r.csv")}


@pytest.mark.parametrize("after", [0.0, 0.05, 0.2, 0.4, 0.8, 2.5])
def test_sigterm_from_the_first_instant_exits_143_cleanly(work: Path, mock: Mock, after: float) -> None:
    """From the moment Python runs the program, SIGTERM exits 143 (imports, the scan);
    only during the interpreter's own start (tens of ms) can the default action come first,
    and then nothing has happened at all."""
    customers_csv(work / "in.csv", 200_000)  # a long scan before sending
    proc = popen_cli(*run_args(mock), cwd=work)
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    if after >= 0.2:
        assert proc.returncode == 143, err
    else:
        assert proc.returncode in (143, -signal.SIGTERM), err
    assert "Traceback" not in err
    # A fast machine may finish the scan and start sending before the signal: whatever went
    # out is accounted for, as sent, and nothing is left in doubt.
    report = read_report(work / "r.csv") if (work / "r.csv").exists() else []
    statuses = Counter(r["status"] for r in report)
    assert statuses["unknown"] == 0
    assert mock.stats()["requests"] == statuses["sent"]


# --- 11-13: proxies and TLS --------------------------------------------------------------------


class ForwardProxy:
    """A plain-HTTP forward proxy on loopback that counts the requests it relays."""

    def __init__(self) -> None:
        self.relayed = 0
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ")
                headers = [h for h in lines[1:] if h and not h.lower().startswith(("proxy-", "connection"))]
                length = next((int(h.split(":")[1]) for h in headers if h.lower().startswith("content-length")), 0)
                body = await reader.readexactly(length)
                url = urlsplit(target)
                up_r, up_w = await asyncio.open_connection(url.hostname, url.port)
                request = (
                    f"{method} {url.path} HTTP/1.1\r\n" + "\r\n".join([*headers, "Connection: close"]) + "\r\n\r\n"
                )
                up_w.write(request.encode("latin-1") + body)
                await up_w.drain()
                answer = await up_r.read()
                up_w.close()
                self.relayed += 1
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)


def test_http_proxy_and_no_proxy_are_honoured(work: Path, mock: Mock) -> None:
    proxy = ForwardProxy()
    try:
        customers_csv(work / "in.csv", 20)
        res = run_cli(*run_args(mock), cwd=work, env=cli_env(HTTP_PROXY=proxy.url))
        assert res.returncode == 0, res.stderr
        assert proxy.relayed == 20 and len(mock.received()) == 20
        other_events(work / "in.csv", 30)
        res = run_cli(*run_args(mock), cwd=work, env=cli_env(http_proxy=proxy.url, NO_PROXY="127.0.0.1"))
        assert res.returncode == 0, res.stderr
        assert proxy.relayed == 20 and len(mock.received()) == 50  # bypassed
    finally:
        proxy.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Path:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=ecdp-import test CA")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem",
        "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d


def test_a_corporate_ca_works_through_ca_bundle_and_the_environment(work: Path, certs: Path) -> None:
    mock = start_mock(work, "--tls-cert", str(certs / "srv.pem"), "--tls-key", str(certs / "srv.key"))
    try:
        assert mock.url.startswith("https://127.0.0.1:")
        customers_csv(work / "in.csv", 10)
        res = run_cli(*run_args(mock, "--ca-bundle", str(certs / "ca.pem")), cwd=work)
        assert res.returncode == 0, res.stderr
        other_events(work / "in.csv", 11, "D")
        res = run_cli(*run_args(mock), cwd=work, env=cli_env(REQUESTS_CA_BUNDLE=str(certs / "ca.pem")))
        assert res.returncode == 0, res.stderr
        other_events(work / "in.csv", 12, "E")
        env = {k: v for k, v in cli_env(SSL_CERT_FILE=str(certs / "ca.pem")).items() if k != "REQUESTS_CA_BUNDLE"}
        res = run_cli(*run_args(mock), cwd=work, env=env)
        assert res.returncode == 0, res.stderr
        assert len(mock.received()) == 33
    finally:
        mock.stop()


def test_an_untrusted_certificate_is_named_at_once_and_not_retried(work: Path, certs: Path) -> None:
    mock = start_mock(work, "--tls-cert", str(certs / "srv.pem"), "--tls-key", str(certs / "srv.key"))
    try:
        env = {k: v for k, v in cli_env().items() if k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
        started = time.monotonic()
        res = run_cli(*run_args(mock, "--concurrency", "1"), cwd=work, env=env)
        assert time.monotonic() - started < 10
        assert res.returncode == 2, res.stderr
        assert "certificate" in res.stderr and "--ca-bundle" in res.stderr
        assert "retries 0" in res.stdout and mock.received() == []
    finally:
        mock.stop()


def test_a_missing_ca_bundle_is_a_configuration_error(work: Path) -> None:
    res = run_cli(
        "run", "in.csv", "--mapping", "m.yaml", "--base-url", "https://127.0.0.1:9", "--state-dir", "state",
        "--ca-bundle", "nope.pem", cwd=work,
    )  # fmt: skip
    assert res.returncode == 2 and "cannot load the CA bundle nope.pem" in res.stderr
    assert not (work / "state").exists()  # refused before the journal was even opened


# --- the library: no signals, a loop of its own or the caller's, a stop token -------------------


def library_config(work: Path, mock: Mock, **kw: Any) -> Any:
    from importer import RunConfig, Secret

    return RunConfig(
        inputs=(str(work / "in.csv"),), mapping=str(work / "m.yaml"), api_key=Secret(KEY), base_url=mock.url,
        state_dir=str(work / "state"), report=str(work / "r.csv"), **kw,
    )  # fmt: skip


def test_run_import_works_from_a_worker_thread(work: Path, mock: Mock) -> None:
    from importer import run_import

    results: list[Any] = []
    before = signal.getsignal(signal.SIGTERM)
    worker = threading.Thread(target=lambda: results.append(run_import(library_config(work, mock))))
    worker.start()
    worker.join(60)
    assert results and results[0].exit_code == 0 and results[0].counts == {"sent": 300}
    assert signal.getsignal(signal.SIGTERM) is before  # the library installed nothing


def test_arun_import_inside_a_running_loop_and_a_stop_drains(work: Path, mock_factory: Any) -> None:
    from importer import StopToken, arun_import

    mock = mock_factory("--latency-ms", "20")

    async def go() -> Any:
        stop = StopToken()
        running = asyncio.create_task(arun_import(library_config(work, mock, concurrency=4), stop=stop))
        while mock.stats()["requests"] < 20:
            await asyncio.sleep(0.01)
        threading.Thread(target=stop.stop).start()  # from another thread, as a caller would
        return await running

    summary = asyncio.run(go())
    assert summary.exit_code == 143 and summary.stop_reason == "caller"
    statuses = Counter(r["status"] for r in read_report(work / "r.csv"))
    assert "unknown" not in statuses and statuses["not_attempted"] > 0
    assert statuses["sent"] == len(mock.received())


def test_a_state_directory_with_uri_characters_in_its_name(work: Path, mock: Mock) -> None:
    state = "st ?#%20x"
    assert run_cli(*run_args(mock, state=state), cwd=work).returncode == 0
    assert run_cli(*run_args(mock, state=state), cwd=work).returncode == 0
    assert mock.stats()["requests"] == 300  # the rerun found the journal: nothing twice
    assert run_cli("status", "--state-dir", state, cwd=work).returncode == 0


def test_the_package_root_lists_the_public_api_and_imports_it_lazily() -> None:
    code = (
        "import sys, importer; assert 'importer.pipeline' not in sys.modules; "
        "assert sorted(importer.__all__) == sorted(['__version__', *importer._EXPORTS]); "
        "assert all(getattr(importer, n) is not None for n in importer.__all__); print('ok')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "ok", res.stderr
