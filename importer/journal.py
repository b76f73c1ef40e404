"""Durable per-row state in SQLite (WAL), so that any run can be resumed.

An import is a file's content (its SHA-256); a row is (import, row number). A row is
marked ``inflight`` *durably* before its request leaves and gets its outcome right
after. Writes are group-committed once per event-loop turn: every ``started`` awaits the
commit that holds it, so after ``kill -9`` only rows actually in flight are uncertain;
those read back as ``unknown``. One process at a time holds the state directory's lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, ClassVar

from importer.errors import StateError
from importer.sender import Job, Outcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    total_rows INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS imports_path ON imports(path);
CREATE TABLE IF NOT EXISTS rows (
    import_id INTEGER NOT NULL,
    row_number INTEGER NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER,
    substatus TEXT,
    detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    customer_ref TEXT,
    PRIMARY KEY (import_id, row_number)
) WITHOUT ROWID;
"""
_START = (
    "INSERT INTO rows (import_id, row_number, status, attempts, customer_ref) "
    "VALUES (?, ?, 'inflight', 1, ?) ON CONFLICT DO UPDATE SET status = 'inflight', "
    "attempts = attempts + 1, customer_ref = excluded.customer_ref"
)
_FINISH = (
    "UPDATE rows SET status = ?, http_status = ?, substatus = ?, detail = ? WHERE import_id = ? AND row_number = ?"
)
_UNSENT = (
    "INSERT INTO rows (import_id, row_number, status, detail, customer_ref) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET status = excluded.status, "
    "http_status = NULL, substatus = NULL, detail = excluded.detail, "
    "customer_ref = excluded.customer_ref"
)
DONE = ("sent", "invalid", "rejected", "skipped")


@dataclass(frozen=True, slots=True)
class JournalRow:
    row_number: int
    status: str
    http_status: int | None
    substatus: str
    detail: str
    attempts: int
    customer_ref: str


class RowStatuses:
    """Row number -> status in one byte per row: a resumed import of millions of rows
    must not hold a dict entry per row."""

    NAMES: ClassVar[tuple[str | None, ...]] = (None, "sent", "invalid", "rejected", "unknown", "inflight", "skipped")
    CODES: ClassVar[dict[str, int]] = {name: code for code, name in enumerate(NAMES) if name}

    def __init__(self) -> None:
        self._codes = bytearray()

    def set(self, row_number: int, status: str) -> None:
        if row_number >= len(self._codes):
            self._codes.extend(bytes(max(row_number + 1 - len(self._codes), len(self._codes))))
        self._codes[row_number] = self.CODES[status]

    def get(self, row_number: int) -> str | None:
        if row_number >= len(self._codes):
            return None
        return self.NAMES[self._codes[row_number]]


def fingerprint(path: Path) -> str:
    """SHA-256 of the file's content: the identity of an import."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Journal:
    """The state directory: a lock file and an SQLite database."""

    def __init__(self, state_dir: str) -> None:
        self.dir = Path(state_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.dir / "lock", "w")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise StateError(f"cannot use state directory {state_dir}: {exc.strerror}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise StateError(
                f"another ecdp-import run is using the state directory {state_dir}; "
                "wait for it to finish (two runs at once could send rows twice)"
            ) from exc
        self.db = sqlite3.connect(self.dir / "journal.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        # Rows in flight when an earlier process died may or may not have been applied.
        self.db.execute("UPDATE rows SET status = 'unknown' WHERE status = 'inflight'")
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False

    def close(self) -> None:
        self.flush()
        self.db.close()
        self._lock.close()

    def resolve_import(self, path: Path, content: str, size: int, new_import: bool) -> int:
        """The import id for this content: resumed if known, else new, unless the path's
        previous import is unfinished (a possibly edited copy of a half-sent file)."""
        real = os.path.realpath(path)
        found = self.db.execute("SELECT id FROM imports WHERE fingerprint = ?", (content,)).fetchone()
        if found:
            self.db.execute("UPDATE imports SET path = ? WHERE id = ?", (real, found[0]))
            return int(found[0])
        prev = self.db.execute("SELECT id FROM imports WHERE path = ? ORDER BY id DESC LIMIT 1", (real,)).fetchone()
        if prev and not new_import and not self.is_finished(prev[0]):
            raise StateError(
                f"{path}: its content changed since an earlier import of this path that is "
                "unfinished (rows not_attempted, failed or unknown); resending it whole could "
                "send rows twice. Rerun with the original file to finish that import, or pass "
                "--new-import to import this content as new"
            )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        cur = self.db.execute(
            "INSERT INTO imports (path, fingerprint, size, created_at) VALUES (?, ?, ?, ?)",
            (real, content, size, now),
        )
        return int(cur.lastrowid or 0)

    def is_finished(self, import_id: int) -> bool:
        total = self.total_rows(import_id)
        if total is None:
            return False
        done = self.db.execute(
            f"SELECT count(*) FROM rows WHERE import_id = ? AND status IN {DONE}",
            (import_id,),
        ).fetchone()[0]
        return int(done) == total

    def total_rows(self, import_id: int) -> int | None:
        found = self.db.execute("SELECT total_rows FROM imports WHERE id = ?", (import_id,)).fetchone()
        return None if not found or found[0] is None else int(found[0])

    def set_total(self, import_id: int, total: int) -> None:
        self.flush()
        self.db.execute("UPDATE imports SET total_rows = ? WHERE id = ?", (total, import_id))

    def statuses(self, import_id: int) -> RowStatuses:
        """The status of every journaled row that is not to be sent again by default;
        rows absent here are new, not attempted or failed."""
        found = RowStatuses()
        cur = self.db.execute(
            "SELECT row_number, status FROM rows WHERE import_id = ? AND status != 'failed'",
            (import_id,),
        )
        for number, status in cur:
            found.set(number, status)
        return found

    async def started(self, job: Job) -> None:
        """Mark the row in flight and wait until that is committed."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._add(_START, (job.key[0], job.key[1], job.ref))
        await future

    def finished(self, job: Job, outcome: Outcome) -> None:
        self._add(
            _FINISH,
            (outcome.status, outcome.http_status, outcome.substatus, outcome.detail, *job.key),
        )

    def unsent(self, import_id: int, row_number: int, status: str, detail: str, ref: str) -> None:
        """Record a row that is not sent: ``invalid``, or ``skipped`` by a filter."""
        self._add(_UNSENT, (import_id, row_number, status, detail, ref))

    def _add(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))
        if not self._scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
                self._scheduled = True
            except RuntimeError:  # no loop: the caller flushes
                pass

    def flush(self) -> None:
        """Commit every pending write in one transaction, then release the waiters."""
        self._scheduled = False
        pending, self._pending = self._pending, []
        waiters, self._waiters = self._waiters, []
        if pending:
            self.db.execute("BEGIN")
            # Consecutive writes of one kind go in one executemany; the order is kept.
            for sql, group in groupby(pending, key=itemgetter(0)):
                self.db.executemany(sql, [params for _, params in group])
            self.db.execute("COMMIT")
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def rows(self, import_id: int) -> Iterator[JournalRow]:
        cur = self.db.execute(
            "SELECT row_number, status, http_status, substatus, detail, attempts, customer_ref "
            "FROM rows WHERE import_id = ? ORDER BY row_number",
            (import_id,),
        )
        for r in cur:
            yield JournalRow(r[0], r[1], r[2], r[3] or "", r[4] or "", r[5], r[6] or "")
