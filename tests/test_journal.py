"""The journal's write batching: as few executemany calls as order allows, never a
reordering that could leave a row's outcome before its in-flight mark."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from importer.errors import ConversionError
from importer.identity import _phone_reference, to_e164
from importer.journal import _FINISH, _START, Journal, _batches


def start(row: int) -> tuple[str, tuple[object, ...]]:
    return _START, (1, row, "ref")


def finish(row: int, status: str = "sent") -> tuple[str, tuple[object, ...]]:
    return _FINISH, (status, 201, "", "", 1, row)


def test_independent_rows_go_in_one_call_per_kind() -> None:
    pending = [start(1), finish(2), start(3), finish(4), start(5)]
    assert [(sql, len(p)) for sql, p in _batches(pending)] == [(_START, 3), (_FINISH, 2)]


def test_a_row_written_twice_keeps_the_exact_order() -> None:
    pending = [start(1), finish(1, "failed"), start(1), finish(2)]
    assert [sql for sql, _ in _batches(pending)] == [_START, _FINISH, _START, _FINISH]


def test_the_last_write_of_a_row_wins_in_the_database(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "s"), durable=False)
    import_id = journal.resolve_import(tmp_path, "a" * 64, 1, False)
    pending = [
        (_START, (import_id, 1, "r")),
        (_FINISH, ("failed", 429, "", "", import_id, 1)),
        (_START, (import_id, 1, "r")),
        (_START, (import_id, 2, "r")),
    ]
    journal._commit(pending, [])
    rows = {r.row_number: (r.status, r.attempts) for r in journal.rows(import_id)}
    assert rows == {1: ("inflight", 2), 2: ("inflight", 1)}  # a kill now: both unknown, none resent
    journal.close()


@given(st.text(alphabet="+0123456789 ()-.", max_size=20), st.sampled_from([None, "PL", "US", "GB"]))
def test_the_phone_cache_answers_as_parsing_does(raw: str, region: str | None) -> None:
    oracle = _phone_reference(raw, region)  # phonenumbers alone, uncached
    for _ in range(2):  # a miss, then a hit
        try:
            got = to_e164(raw, region)
        except ConversionError as exc:
            got = str(exc)
        assert got == oracle


def test_a_stop_ends_the_wait_for_the_page_check(tmp_path: Path, monkeypatch: Any) -> None:
    """A journal of millions of rows takes seconds to check: a SIGTERM must not wait for it."""
    monkeypatch.setattr(Journal, "_quick_check", lambda self: time.sleep(5) or self._verdict.append("ok"))
    journal = Journal(str(tmp_path / "s"), durable=False)
    started = time.monotonic()
    assert journal.verified(lambda: time.monotonic() - started > 0.2) is False
    assert time.monotonic() - started < 1.0
    journal.close()


def test_the_hash_pass_asks_whether_to_stop_between_blocks(tmp_path: Path) -> None:
    from importer.source import _Bounded

    (tmp_path / "big").write_bytes(b"x" * (5 << 20))
    asked = iter([False, True])  # go on after the first MiB, stop after the second
    with _Bounded(tmp_path / "big", 5 << 20) as raw:
        raw.drain(lambda: next(asked))
        assert raw.tell() == 2 << 20


def test_a_reader_that_fails_part_way_leaves_a_directory_the_next_run_trusts(tmp_path: Path) -> None:
    """A report writer that dies mid-way (a full disk) must not leave 'unclean, no log'."""
    journal = Journal(str(tmp_path / "s"), durable=False)
    import_id = journal.resolve_import(tmp_path, "b" * 64, 1, False)
    rows = [(_START, (import_id, n, "r")) for n in range(1, 25_001)]
    journal._commit(rows, [])
    reading = journal.rows(import_id)
    assert next(reading).row_number == 1  # the writer stops here
    journal.close()
    del reading, journal  # the process ends: whatever is still open closes now
    gc.collect()
    again = Journal(str(tmp_path / "s"), durable=False)  # was: "write-ahead log ... is missing"
    assert again.verified() and sum(1 for _ in again.rows(import_id)) == 25_000
    again.close()


def test_close_leaves_no_page_check_running(tmp_path: Path) -> None:
    """A run stopped during the scan closes the journal while its page check may still
    run: close() ends that thread (one left inside SQLite can crash the exiting interpreter)."""
    for _ in range(20):
        journal = Journal(str(tmp_path / "s"))
        journal.close()
        assert not journal._checker.is_alive()
