"""Runs that must end: a cancellation repeated during the drain, and a task of the send
loop dying of an unexpected exception. Each scenario runs with its own event loop in a
daemon thread (or a subprocess) under a deadline, so a regression fails instead of
hanging the suite; the loop's shutdown is part of the scenario, since a task left blocked
on the queue hangs ``asyncio.run`` there."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from importer import Progress, RunConfig, Secret, arun_import, run_import
from tests.conftest import CUSTOMER_MAPPING, KEY, Mock, cli_env, customers_csv, read_report, run_args, run_cli


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    return tmp_path


def config(work: Path, mock: Mock, rows: int) -> RunConfig:
    return RunConfig(
        inputs=(str(customers_csv(work / "in.csv", rows)),),
        mapping=str(work / "m.yaml"),
        api_key=Secret(KEY),
        base_url=mock.url,
        state_dir=str(work / "state"),
        report=str(work / "r.csv"),
    )


def within(seconds: float, scenario: Callable[[], Coroutine[Any, Any, Any]]) -> BaseException | None:
    """Run ``scenario`` under ``asyncio.run`` in a daemon thread; fail if it (or the
    loop's shutdown) has not ended after ``seconds``; return what it raised."""
    raised: list[BaseException | None] = []

    def target() -> None:
        try:
            asyncio.run(scenario())
            raised.append(None)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the run did not end within {seconds} s"
    return raised[0]


def statuses(work: Path) -> Counter[str]:
    return Counter(r["status"] for r in read_report(work / "r.csv"))


def test_cancelling_three_times_during_the_drain_still_drains_and_raises(work: Path, mock_factory: Any) -> None:
    """anyio cancel scopes cancel again on every loop turn, ``wait_for`` once more: each
    cancel after the first must not cut the requests on the wire (rows ``unknown``) or
    leave the producer blocked on a queue no worker reads."""
    slow = mock_factory("--latency-ms", "500")  # a drain long enough to be cancelled in
    cancelled: list[bool] = []

    async def scenario() -> None:
        task = asyncio.ensure_future(arun_import(config(work, slow, 300)))
        while len(slow.received()) < 16:
            await asyncio.sleep(0.01)
        for _ in range(3):
            cancelled.append(not task.done())
            task.cancel()
            await asyncio.sleep(0.05)
        await task

    started = time.monotonic()
    assert isinstance(within(20, scenario), asyncio.CancelledError)
    assert cancelled == [True, True, True]  # all three landed before the run ended
    assert time.monotonic() - started < 10
    counts = statuses(work)
    assert counts["unknown"] == 0 and counts["sent"] == len(slow.received()) < 300
    assert counts["sent"] + counts["not_attempted"] == 300
    fast = mock_factory(name="rest.jsonl", replacing=slow)  # the same target: the same import
    rest = run_import(config(work, fast, 300))
    assert rest.counts == {"sent": 300}
    crm_ids = Counter(r["body"]["customerCrmId"] for r in slow.received() + fast.received())
    assert len(crm_ids) == 300 and set(crm_ids.values()) == {1}  # each row once


CTRL_C = """\
import os, sys
from importer import RunConfig, Secret, run_import
source, mapping, url, state, report = sys.argv[1:]
key = Secret(os.environ["ECDP_API_KEY"])
try:
    run_import(RunConfig((source,), mapping, key, base_url=url, report=report, state_dir=state))
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_a_second_ctrl_c_on_run_import_cuts_the_drain_and_ends(work: Path, mock_factory: Any) -> None:
    """asyncio's runner cancels on the first SIGINT (a drain) and raises KeyboardInterrupt
    on the second, then cancels every task, the producer among them: it must not wait on
    a queue whose workers were cancelled. Only rows on the wire may end ``unknown``."""
    slow = mock_factory("--latency-ms", "500")
    customers_csv(work / "in.csv", 300)
    args = ["in.csv", "m.yaml", slow.url, "state", "r.csv"]
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C, *args], cwd=work, env=cli_env(), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(slow.received()) < 16 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    report = read_report(work / "r.csv")
    rows = {status: {r["row_number"] for r in report if r["status"] == status} for status in statuses(work)}
    received = {r["body"]["customerCrmId"][1:] for r in slow.received()}
    assert set(rows) <= {"sent", "unknown", "not_attempted"} and len(report) == 300
    assert rows["sent"] <= received and not rows.get("not_attempted", set()) & received
    assert len(rows.get("unknown", ())) <= 8  # --concurrency


FAULTY = """\
import sys
from importer import transport
real = transport.HttpTransport.post
async def post(self, path, body):
    if b'"C200"' in body:  # a stand-in for a bug in our code or a library
        raise RuntimeError("a bug in the request path")
    return await real(self, path, body)
transport.HttpTransport.post = post
from importer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_exception_inside_a_request_exits_70_and_a_rerun_resends_nothing_sent(work: Path, mock: Mock) -> None:
    customers_csv(work / "in.csv", 300)
    res = subprocess.run(
        [sys.executable, "-c", FAULTY, *run_args(mock, "--progress-interval", "0.05")],
        cwd=work,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,  # the bug hung here for ever, with 199 rows sent
    )
    assert res.returncode == 70, res.stderr
    assert "internal error (a bug in ecdp-import, not in your input): RuntimeError: a bug in the request path" in (
        res.stderr
    )
    assert "RuntimeError: a bug in the request path" in (work / "state" / "errors.log").read_text()
    report = {r["row_number"]: r["status"] for r in read_report(work / "r.csv")}
    assert len(report) == 300 and report["200"] == "unknown"  # it may have left: never `sent`
    counts = Counter(report.values())
    assert counts["unknown"] == 1 and counts["sent"] == len(mock.received()) >= 199
    again = run_cli(*run_args(mock, "--no-progress"), cwd=work)
    assert again.returncode == 75, again.stderr  # row 200 stays unknown without --resend-unknown
    delivered = Counter(r["body"]["customerCrmId"] for r in mock.received())
    assert len(delivered) == 299 and "C200" not in delivered and set(delivered.values()) == {1}


def test_a_progress_ticker_that_dies_ends_the_run(work: Path, mock_factory: Any) -> None:
    slow = mock_factory("--latency-ms", "50")

    def broken(_: dict[str, Any]) -> None:
        raise ZeroDivisionError("a bug in the progress callback")

    async def scenario() -> None:
        await arun_import(config(work, slow, 3000), progress=Progress.calling(broken, 0.2))

    raised = within(30, scenario)
    assert isinstance(raised, ZeroDivisionError), raised
    counts = statuses(work)  # written from the journal, like any internal error
    assert counts["unknown"] == 0 and counts["sent"] == len(slow.received()) < 3000
