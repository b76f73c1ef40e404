"""Durable per-row state in SQLite (WAL), so that any run can be resumed.

An import is a file's content (its SHA-256); a row is (import, row number). A row is
marked ``inflight`` *durably* before its request leaves and gets its outcome right
after; a row waiting out a backoff is ``failed`` again until its next attempt. Writes
are group-committed once per event-loop turn: every ``started`` awaits the commit that
holds it, so after ``kill -9`` only rows actually in flight are uncertain; those read
back as ``unknown``. One process at a time holds the state directory's lock.

The journal is where exactly-once lives, so it is trusted only when it is provably the
one this state directory has been writing: a marker file (``state-id``) holds the
directory's id and whether the last run closed cleanly, and the database holds the same
id. An empty, missing, swapped or damaged journal, or a write-ahead log deleted after a
crash, refuses the run before anything is sent; a journal deleted or a disk filled
while a run goes on stops it (``JournalFault``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, ClassVar

import orjson

from importer.errors import JournalFault, StateError
from importer.scope import UNSCOPED, Scope, import_identity
from importer.sender import Job, Outcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    total_rows INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS imports_path ON imports(path);
CREATE TABLE IF NOT EXISTS import_paths (
    path TEXT NOT NULL,
    import_id INTEGER NOT NULL,
    PRIMARY KEY (path, import_id)
) WITHOUT ROWID;
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
CREATE INDEX IF NOT EXISTS rows_inflight ON rows(status) WHERE status = 'inflight';
CREATE TABLE IF NOT EXISTS targets (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL
);
"""
# Version 2: an import is content + mapping + target; the ledger and the bucket objects
# are per target / per import. Tables whose key changed are rebuilt, their rows kept:
# what an older version recorded has no mapping or target (target 0, NULL), and is
# adopted by the first run that meets it (see ``resolve_import``).
SCHEMA_VERSION = 2
_MIGRATE_2 = """
ALTER TABLE imports ADD COLUMN content TEXT;
ALTER TABLE imports ADD COLUMN mapping_fingerprint TEXT;
ALTER TABLE imports ADD COLUMN mapping_path TEXT;
ALTER TABLE imports ADD COLUMN mapping_event TEXT;
ALTER TABLE imports ADD COLUMN target_id INTEGER NOT NULL DEFAULT 0;
UPDATE imports SET content = fingerprint;
CREATE INDEX imports_content ON imports(content);
CREATE TABLE ledger_v2 (
    target_id INTEGER NOT NULL,
    identity BLOB NOT NULL,
    import_id INTEGER NOT NULL,
    row_number INTEGER NOT NULL,
    PRIMARY KEY (target_id, identity)
) WITHOUT ROWID;
INSERT INTO ledger_v2 SELECT 0, identity, import_id, row_number FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v2 RENAME TO ledger;
CREATE TABLE remote_objects_v2 (
    url TEXT NOT NULL,
    version TEXT NOT NULL,
    size INTEGER NOT NULL,
    import_id INTEGER NOT NULL,
    PRIMARY KEY (url, version, size, import_id)
) WITHOUT ROWID;
INSERT INTO remote_objects_v2 SELECT url, version, size, import_id FROM remote_objects;
DROP TABLE remote_objects;
ALTER TABLE remote_objects_v2 RENAME TO remote_objects;
"""
_LEGACY_TABLES = """
CREATE TABLE IF NOT EXISTS remote_objects (
    url TEXT NOT NULL, version TEXT NOT NULL, size INTEGER NOT NULL, import_id INTEGER NOT NULL,
    PRIMARY KEY (url, version, size)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
    identity BLOB PRIMARY KEY, import_id INTEGER NOT NULL, row_number INTEGER NOT NULL
) WITHOUT ROWID;
"""
_LEDGER = (
    "INSERT INTO ledger (target_id, identity, import_id, row_number) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (target_id, identity) DO UPDATE SET import_id = excluded.import_id, row_number = excluded.row_number"
)
# Entries of target 0 were recorded before the ledger knew targets: they hold for every target.
_HOLDERS = (
    "SELECT l.identity, l.import_id, l.row_number, r.status, i.path FROM ledger l "
    "JOIN rows r ON r.import_id = l.import_id AND r.row_number = l.row_number "
    "JOIN imports i ON i.id = l.import_id WHERE l.target_id IN (0, ?) AND l.identity IN ({})"
)
_HOLDING = {"sent": 0, "inflight": 0, "unknown": 1}  # which of two holders speaks for an event
Holder = tuple[int, int, str, str]  # import id, row number, that row's status, its file
# Whether this run's mapping makes these events (identity, row number) of those rows.
Verify = Callable[[list[tuple[bytes, int]]], bool]
LEGACY_SAMPLE = 20  # rows of a schema-1 import whose events are rendered again to recognise its mapping
_START = (
    "INSERT INTO rows (import_id, row_number, status, attempts, customer_ref) "
    "VALUES (?, ?, 'inflight', 1, ?) ON CONFLICT (import_id, row_number) DO UPDATE SET status = 'inflight', "
    "attempts = rows.attempts + 1, customer_ref = excluded.customer_ref"
)
_FINISH = (
    "UPDATE rows SET status = ?, http_status = ?, substatus = ?, detail = ? WHERE import_id = ? AND row_number = ?"
)
_UNSENT = (
    "INSERT INTO rows (import_id, row_number, status, detail, customer_ref) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (import_id, row_number) DO UPDATE SET status = excluded.status, "
    "http_status = NULL, substatus = NULL, detail = excluded.detail, "
    "customer_ref = excluded.customer_ref"
)
# ``held``: a duplicate of a row whose outcome is unknown; reported as ``duplicate``, and
# looked at again only with --resend-unknown. ``duplicate`` is final: a later prune of
# the row it duplicates must not turn it into a resend.
DONE = ("sent", "invalid", "rejected", "skipped", "duplicate", "held")
REPORTED = {"inflight": "unknown", "held": "duplicate"}  # journal states that reports show otherwise
DB_NAME = "journal.sqlite3"
MARKER_NAME = "state-id"
WATCH_EVERY = 1.0  # seconds between checks that the journal file is still ours
ROWS_PAGE = 10_000  # journal rows read per query for reports


_ROW_OF: dict[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]] = {
    _START: itemgetter(0, 1),
    _FINISH: itemgetter(4, 5),
    _UNSENT: itemgetter(0, 1),
}


def _batches(pending: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The pending writes as few ``executemany`` calls as order allows. When no row is
    written twice in the batch, rows are independent: one call per kind of write (marks
    and outcomes alternate as requests start and end, which would otherwise make a call
    of one write each). A row written twice (an outcome, then its next attempt's mark)
    keeps the exact order: consecutive writes of one kind go together."""
    rows = [_ROW_OF[sql](params) for sql, params in pending]
    if len(set(rows)) == len(rows):
        kinds: dict[str, list[tuple[Any, ...]]] = {}
        for sql, params in pending:
            kinds.setdefault(sql, []).append(params)
        return list(kinds.items())
    return [(sql, [params for _, params in group]) for sql, group in groupby(pending, key=itemgetter(0))]


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

    NAMES: ClassVar[tuple[str | None, ...]] = (
        None, "sent", "invalid", "rejected", "unknown", "inflight", "skipped", "duplicate", "held",
    )  # fmt: skip
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


def _fault(exc: object, where: str = "state directory") -> JournalFault:
    said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # PostgreSQL adds lines of context
    return JournalFault(f"{where}: {said}; stopped sending (rows on the wire will read back as unknown)")


class Journal:
    """The state directory: a lock file, an identity marker and an SQLite database.

    Args:
        state_dir: the directory (created if missing).
        durable: commit with ``synchronous=FULL``, so that an in-flight mark survives a
            host crash or power loss, not only a killed process.
    """

    def __init__(self, state_dir: str, durable: bool = True) -> None:
        self._setup("state directory")
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        self._marker = self.dir / MARKER_NAME
        self._lock = self._take_lock(state_dir)
        try:
            self.db = self._open(durable)
        except sqlite3.DatabaseError as exc:
            self._lock.close()
            if "full" in str(exc):
                raise _fault(exc) from exc
            raise StateError(self._untrusted(f"the journal {self.path} is damaged ({exc})")) from exc
        except OSError as exc:
            self._lock.close()
            raise _fault(exc.strerror or exc) from exc
        except StateError:
            self._lock.close()
            raise

    def _setup(self, where: str) -> None:
        """What every store starts with; ``where`` names it in messages."""
        self.where = where
        self.errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)  # what a failing store raises
        self.on_fault: Callable[[JournalFault], None] | None = None
        self.fault: JournalFault | None = None
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._ledger: list[tuple[int, bytes, int, int]] = []
        self.target_id = 0  # until use_scope: legacy entries only
        self._orphaned = False  # the journal was deleted under the run: restore it at close
        self.scope = UNSCOPED
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._next_watch = 0.0

    def _take_lock(self, state_dir: str) -> Any:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            lock = open(self.dir / "lock", "w")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise StateError(f"cannot use state directory {state_dir}: {exc.strerror}") from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise StateError(
                f"another ecdp-import run is using the state directory {state_dir}; "
                "wait for it to finish (two runs at once could send rows twice)"
            ) from exc
        return lock

    def _untrusted(self, what: str) -> str:
        return (
            f"{what}. It cannot be trusted to say which rows were sent, so nothing was sent. "
            "Restore the state directory from a backup; or, accepting that rows sent before may be "
            "sent again, move it away and rerun"
        )

    def _read_marker(self) -> dict[str, Any] | None:
        try:
            doc = orjson.loads(self._marker.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StateError(self._untrusted(f"the state marker {self._marker} is unreadable ({exc})")) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            raise StateError(self._untrusted(f"the state marker {self._marker} is damaged"))
        return doc

    def _write_marker(self, state_id: str, clean: bool) -> None:
        partial = self._marker.with_name(MARKER_NAME + ".partial")
        with partial.open("wb") as fh:
            fh.write(orjson.dumps({"id": state_id, "clean": clean}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, self._marker)

    def _open(self, durable: bool) -> sqlite3.Connection:
        marker = self._read_marker()
        if self.path.is_dir():
            raise StateError(self._untrusted(f"the journal path {self.path} is a directory"))
        size = self.path.stat().st_size if self.path.exists() else 0
        if size == 0 and (marker is not None or self.path.exists()):
            raise StateError(
                self._untrusted(f"the journal {self.path} is missing or empty, but this state directory has been used")
            )
        wal = self.path.with_name(DB_NAME + "-wal")
        if marker is not None and not marker.get("clean", True) and not wal.exists():
            raise StateError(
                self._untrusted(f"the journal's write-ahead log {wal} is missing after a run that did not finish")
            )
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            db.executescript(SCHEMA)
            self._adopt_paths(db)
            if "finished_at" not in {r[1] for r in db.execute("PRAGMA table_info(imports)")}:
                db.execute("ALTER TABLE imports ADD COLUMN finished_at TEXT")
            self._migrate(db)
            state_id = self._identify(db, marker)
            # Rows in flight when an earlier process died may or may not have been applied.
            db.execute("UPDATE rows SET status = 'unknown' WHERE status = 'inflight'")
            self._write_marker(state_id, clean=False)
        except BaseException:
            db.close()
            raise
        self._state_id = state_id
        self._ino = self.path.stat().st_ino
        self._verdict: list[str] = []
        self._checking: sqlite3.Connection | None = None
        self._checker = threading.Thread(target=self._quick_check, name="journal-check", daemon=True)
        self._checker.start()
        return db

    def _quick_check(self) -> None:
        """Check every page of the journal on a connection of its own, while the inputs
        are scanned (it takes about 0.3 s per million rows journaled)."""
        try:
            with contextlib.closing(sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)) as ro:
                self._checking = ro
                try:
                    found = ro.execute("PRAGMA quick_check(5)").fetchall()
                finally:
                    self._checking = None
            self._verdict.append("; ".join(str(r[0]) for r in found))
        except sqlite3.Error as exc:
            self._verdict.append(str(exc))

    def verified(self, stopped: Callable[[], bool] = lambda: False) -> bool:
        """Wait for the page check; raise StateError unless the journal is sound. Called
        before the first request leaves. False when ``stopped`` turned true first."""
        while self._checker.is_alive():
            if stopped():
                return False
            self._checker.join(0.05)
        verdict = self._verdict[0] if self._verdict else "not checked"
        if verdict != "ok":
            raise StateError(self._untrusted(f"the journal {self.path} is damaged ({verdict[:200]})"))
        return True

    def _identify(self, db: sqlite3.Connection, marker: dict[str, Any] | None) -> str:
        """The state directory's id, the same in the marker and the database."""
        found = db.execute("SELECT value FROM meta WHERE key = 'state_id'").fetchone()
        if found is None:
            if marker is not None:
                raise StateError(self._untrusted(f"the journal {self.path} is not the one this state directory wrote"))
            state_id = uuid.uuid4().hex  # a new directory, or one from before the marker existed
            db.execute("INSERT INTO meta (key, value) VALUES ('state_id', ?)", (state_id,))
            return state_id
        if marker is not None and marker["id"] != found[0]:
            raise StateError(self._untrusted(f"the journal {self.path} belongs to another state directory"))
        return str(found[0])

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring a journal of an older version to this one, in one transaction; refuse
        one written by a newer version (it may record what this one cannot read)."""
        found = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(found[0]) if found else 1
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the journal {self.path} was written by a newer ecdp-import (schema {version}; this one knows "
                f"{SCHEMA_VERSION}): upgrade ecdp-import to use this state directory"
            )
        if version == SCHEMA_VERSION:
            return
        db.executescript(_LEGACY_TABLES)  # a new journal goes through the same steps as an old one
        db.execute("BEGIN")
        try:
            for statement in _MIGRATE_2.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _adopt_paths(db: sqlite3.Connection) -> None:
        """Journals from before ``import_paths`` knew one path per import."""
        db.execute("INSERT OR IGNORE INTO import_paths (path, import_id) SELECT path, id FROM imports")

    def close(self) -> None:
        """Commit, fold the log into the database and mark the directory clean. The mark
        is written only once SQLite has removed the log, so "unclean" always comes with
        the log the next run recovers from (and a missing log then means damage). A page
        check still going (a stop came first) is interrupted and waited for: a thread left
        inside SQLite while the interpreter exits can crash it."""
        if self._checker.is_alive():
            checking = self._checking
            if checking is not None:
                with contextlib.suppress(sqlite3.ProgrammingError):  # it may close meanwhile
                    checking.interrupt()
            self._checker.join(5)
        if self._orphaned:
            self._restore()
            return
        try:
            if self.fault is None:
                self.flush()
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.close()
            if self.fault is None and not self.path.with_name(DB_NAME + "-wal").exists():
                self._write_marker(self._state_id, clean=True)
        except (sqlite3.Error, OSError):
            pass  # the marker stays "unclean" and the log stays: the next run recovers from it
        finally:
            self._lock.close()

    def _restore(self) -> None:
        """The journal (or the whole state directory) was deleted while this run held it
        open: every row's fate is still in the open connection, so it is written back
        (SQLite's backup API), and the rerun resumes instead of sending everything again.
        Not when another file took the journal's place meanwhile: that one is left alone."""
        try:
            self.flush()
            self.dir.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                partial = self.path.with_name(DB_NAME + ".restoring")
                partial.unlink(missing_ok=True)
                with contextlib.closing(sqlite3.connect(partial)) as copy:
                    self.db.backup(copy)
                self.db.close()
                for leftover in ("-wal", "-shm"):  # the deleted journal's log must not meet the copy
                    self.path.with_name(DB_NAME + leftover).unlink(missing_ok=True)
                os.replace(partial, self.path)
            elif self.path.stat().st_ino == self._ino:  # only the marker went
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.db.close()
            else:
                return
            self._write_marker(self._state_id, clean=True)
        except (sqlite3.Error, OSError):
            pass  # nothing more can be done: the rerun refuses the state directory as it finds it
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self._lock.close()

    def columns(self) -> set[str]:
        """The columns of ``imports`` (a journal of an older version has fewer)."""
        return {str(r[1]) for r in self.db.execute("PRAGMA table_info(imports)")}

    def lock_all(self) -> None:
        """For ``prune``: the state directory's lock, taken when it was opened, is all."""

    def compact(self) -> None:
        self.db.execute("VACUUM")

    def use_scope(self, scope: Scope) -> None:
        """The mapping and target every import of this run is resolved under; the ledger
        is read and written for that target only."""
        target = scope.target
        self.db.execute(
            "INSERT OR IGNORE INTO targets (fingerprint, base_url, key_fingerprint) VALUES (?, ?, ?)",
            (target.fingerprint, target.base_url, target.key_fingerprint),
        )
        found = self.db.execute("SELECT id FROM targets WHERE fingerprint = ?", (target.fingerprint,)).fetchone()
        self.scope = scope
        self.target_id = int(found[0])

    def resolve_import(
        self,
        origin: str | Path,
        content: str,
        size: int,
        new_import: bool,
        strict: bool = False,
        renders_as: Verify | None = None,
    ) -> int:
        """The import id for this content under this run's mapping and target: resumed if
        known, else new. An import of the same content and target by an earlier version of
        the same mapping file, for the same event, is continued under the edited mapping
        (rows sent stay sent; the rest go by the new rules). Refused (unless
        ``new_import``) when an earlier import of the same origin, target and mapping file
        is unfinished and its content changed since (an edited copy of a half-sent file),
        or, with ``strict`` (an in-memory import key), when the key held other content.
        ``renders_as`` tells whether this run's mapping renders rows as an import of an
        earlier version (which recorded no mapping) did: see ``_adopt_legacy``. Every path
        an import was read from stays attached to it."""
        real = origin if isinstance(origin, str) else os.path.realpath(origin)
        scope = self.scope
        identity = import_identity(content, scope)
        found = self.db.execute("SELECT id FROM imports WHERE fingerprint = ?", (identity,)).fetchone()
        if found is None:
            found = self._adopt_edited(content, identity) or self._adopt_legacy(
                origin, content, identity, new_import, renders_as
            )
        if found:
            self.db.execute("INSERT OR IGNORE INTO import_paths (path, import_id) VALUES (?, ?)", (real, found[0]))
            return int(found[0])
        if not new_import:
            self._refuse_changed(origin, real, content, strict)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        import_id = self._insert(
            "INSERT INTO imports (path, fingerprint, size, created_at, content, mapping_fingerprint, mapping_path, "
            "mapping_event, target_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                real,
                identity,
                size,
                now,
                content,
                scope.mapping_fingerprint,
                scope.mapping_path,
                scope.mapping_event,
                self.target_id,
            ),
        )
        self.db.execute("INSERT INTO import_paths (path, import_id) VALUES (?, ?)", (real, import_id))
        return import_id

    def _insert(self, sql: str, params: tuple[Any, ...]) -> int:
        """Insert one row; its new id (``lastrowid``: ``RETURNING`` needs SQLite 3.35)."""
        return int(self.db.execute(sql, params).lastrowid or 0)

    def _adopt_edited(self, content: str, identity: str) -> tuple[int] | None:
        """The import of this content and target that an earlier version of this mapping
        file made for the same event: a mapping fixed to re-validate invalid rows, or edited
        mid-import, continues it, and what was sent is not sent again."""
        scope = self.scope
        found = self.db.execute(
            "SELECT id FROM imports WHERE content = ? AND target_id = ? AND mapping_path = ? AND mapping_event = ? "
            "ORDER BY id DESC LIMIT 1",
            (content, self.target_id, scope.mapping_path, scope.mapping_event),
        ).fetchone()
        if found is None:
            return None
        self.db.execute(
            "UPDATE imports SET fingerprint = ?, mapping_fingerprint = ? WHERE id = ?",
            (identity, scope.mapping_fingerprint, found[0]),
        )
        return (int(found[0]),)

    def _adopt_legacy(
        self, origin: str | Path, content: str, identity: str, new_import: bool, renders_as: Verify | None
    ) -> tuple[int] | None:
        """An import recorded before imports knew their mapping and target (schema 1) is
        this run's only when this mapping provably renders its rows as they were sent: the
        events the ledger recorded for its first rows are those this mapping makes of the
        same rows. Another mapping over the same file is a new import (the old ledger
        entries still hold every body they name, for every target: where they went is not
        known). An old import that sent rows without recording their events (dedup off)
        cannot be told apart: refused, unless ``new_import``."""
        found = self.db.execute(
            "SELECT id FROM imports WHERE content = ? AND mapping_fingerprint IS NULL ORDER BY id DESC LIMIT 1",
            (content,),
        ).fetchone()
        if found is None:
            return None
        sample = [
            (bytes(r[0]), int(r[1]))
            for r in self.db.execute(
                "SELECT identity, row_number FROM ledger WHERE import_id = ? ORDER BY row_number LIMIT ?",
                (found[0], LEGACY_SAMPLE),
            )
        ]
        if not sample:
            sent = self.db.execute(
                "SELECT count(*) FROM rows WHERE import_id = ? AND status IN ('sent', 'inflight', 'unknown')",
                (found[0],),
            ).fetchone()[0]
            if sent and not new_import:
                raise StateError(
                    f"{origin} was imported by an earlier version of ecdp-import, which recorded neither the mapping "
                    "nor the events it sent (dedup was off): whether this mapping is the one it was sent with "
                    "cannot be told. Pass --new-import to import it under this mapping (every row is sent again)"
                )
            return None
        if renders_as is None or not renders_as(sample):
            return None
        scope = self.scope
        self.db.execute(
            "UPDATE imports SET fingerprint = ?, mapping_fingerprint = ?, mapping_path = ?, mapping_event = ?, "
            "target_id = ? WHERE id = ?",
            (identity, scope.mapping_fingerprint, scope.mapping_path, scope.mapping_event, self.target_id, found[0]),
        )
        return (int(found[0]),)

    def _refuse_changed(self, origin: str | Path, real: str, content: str, strict: bool) -> None:
        self._refuse_moved_mapping(origin, content)
        prev = self.db.execute(
            "SELECT i.id, i.content, i.mapping_fingerprint FROM import_paths p JOIN imports i ON i.id = p.import_id "
            "WHERE p.path = ? AND i.target_id IN (0, ?) AND (i.mapping_path = ? OR i.mapping_path IS NULL) "
            "ORDER BY i.id DESC LIMIT 1",
            (real, self.target_id, self.scope.mapping_path),
        ).fetchone()
        if prev is None:
            return
        import_id, prev_content, prev_mapping = prev
        if strict and prev_mapping is None:
            # An import key's content digest changed with schema 2 (values, not layout): a
            # key recorded before cannot be compared, and its import is left to the ledger.
            return
        if strict and prev_content != content:
            raise StateError(
                f"import key {real.removeprefix('memory:')!r} was used before for other content; "
                "pass new_import=True to import this content as new (rows already sent are still "
                "not sent again), or use another import_key"
            )
        if self.is_finished(import_id):
            return
        if prev_content != content:
            raise StateError(
                f"{origin}: its content changed since an earlier import of this path that is "
                "unfinished (rows not_attempted, failed or unknown); resending it whole could "
                "send rows twice. Rerun with the original file to finish that import, or pass "
                "--new-import to import this content as new"
            )

    def _refuse_moved_mapping(self, origin: str | Path, content: str) -> None:
        """An unfinished import of this content, target and event by a mapping file at
        another path (a deploy that moved the mapping, perhaps edited): under this one,
        rows it sent could go again. Refused, like changed content under a half-sent file."""
        found = self.db.execute(
            "SELECT mapping_path FROM imports WHERE content = ? AND target_id = ? AND mapping_event = ? "
            "AND mapping_path != ? ORDER BY id DESC",
            (content, self.target_id, self.scope.mapping_event, self.scope.mapping_path),
        ).fetchall()
        for (path,) in found:
            unfinished = self.db.execute(
                "SELECT id FROM imports WHERE content = ? AND target_id = ? AND mapping_path = ? ORDER BY id DESC",
                (content, self.target_id, path),
            ).fetchone()
            if unfinished and not self.is_finished(unfinished[0]):
                raise StateError(
                    f"{origin}: an import of this file for the same event by the mapping {path} is unfinished "
                    "(rows not_attempted, failed or unknown); under this mapping file the rows it sent could be "
                    "sent again. Rerun with that mapping to finish it, or pass --new-import to import the file "
                    "under this one (events the delivery ledger knows as sent are still not sent again)"
                )

    def finished_object(self, url: str, version: str, size: int) -> tuple[str, int] | None:
        """The content hash and row count of this run's finished import (same mapping, same
        target) that this object version was read into, else None (never seen under them,
        or its import is unfinished)."""
        if not version:
            return None
        candidates = self.db.execute(
            "SELECT o.import_id, i.content, i.total_rows FROM remote_objects o JOIN imports i ON i.id = o.import_id "
            "WHERE o.url = ? AND o.version = ? AND o.size = ? AND i.mapping_fingerprint = ? AND i.target_id = ? "
            "ORDER BY o.import_id DESC",
            (url, version, size, self.scope.mapping_fingerprint, self.target_id),
        ).fetchall()
        for import_id, content, total in candidates:
            if self.is_finished(import_id):
                return str(content), int(total)
        return None

    def remember_object(self, url: str, version: str, size: int, import_id: int) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO remote_objects (url, version, size, import_id) VALUES (?, ?, ?, ?)",
            (url, version, size, import_id),
        )

    def is_finished(self, import_id: int) -> bool:
        total = self.total_rows(import_id)
        if total is None:
            return False
        done = self.db.execute(
            f"SELECT count(*) FROM rows WHERE import_id = ? AND status IN {DONE}",
            (import_id,),
        ).fetchone()[0]
        return int(done) == total

    def count_done(self, import_id: int, resend_unknown: bool = False) -> int:
        """Rows a rerun does not send again (without --retry-rejected, it resends none of
        these): done, and unknown unless --resend-unknown."""
        statuses = [*DONE, "inflight"] + ([] if resend_unknown else ["unknown"])
        found = self.db.execute(
            f"SELECT count(*) FROM rows WHERE import_id = ? AND status IN ({','.join('?' * len(statuses))})",
            (import_id, *statuses),
        ).fetchone()
        return int(found[0])

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
        """Mark the row in flight and wait until that is committed; raise JournalFault
        if it cannot be (the request must not leave then)."""
        if self.fault is not None:
            raise self.fault
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        if job.identity is not None:  # committed with the in-flight mark, never apart
            self._ledger.append((self.target_id, job.identity, *job.key))
        self._add(_START, (job.key[0], job.key[1], job.ref))
        await future

    def holder(self, identity: bytes) -> Holder | None:
        """(import id, row number, that row's status, its file) of the row that last
        took this event identity, if any."""
        return self.holders([identity]).get(identity)

    def holders(self, identities: list[bytes]) -> dict[bytes, Holder]:
        """``holder`` for many identities in one query (a query costs more than its reads)."""
        if not identities:
            return {}
        cur = self.db.execute(*self._holders_query(identities))
        found: dict[bytes, Holder] = {}
        for r in cur:
            holder = (int(r[1]), int(r[2]), str(r[3]), str(r[4]))
            known = found.get(bytes(r[0]))
            if known is None or _HOLDING.get(holder[2], 2) < _HOLDING.get(known[2], 2):
                found[bytes(r[0])] = holder
        return found

    def _holders_query(self, identities: list[bytes]) -> tuple[str, list[Any]]:
        return _HOLDERS.format(",".join("?" * len(identities))), [self.target_id, *identities]

    def mark_finished(self, import_id: int) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.db.execute("UPDATE imports SET finished_at = ? WHERE id = ? AND finished_at IS NULL", (now, import_id))

    def finished(self, job: Job, outcome: Outcome) -> None:
        """Record a row's outcome; also used for a row that waits out a backoff
        (``failed`` until its next attempt), so a crash then leaves it to be resent."""
        self._add(
            _FINISH,
            (outcome.status, outcome.http_status, outcome.substatus, outcome.detail, *job.key),
        )

    def unsent(self, import_id: int, row_number: int, status: str, detail: str, ref: str) -> None:
        """Record a row that is not sent: ``invalid``, or ``skipped`` by a filter."""
        self._add(_UNSENT, (import_id, row_number, status, detail, ref))

    def _add(self, sql: str, params: tuple[Any, ...]) -> None:
        if self.fault is not None and not self._orphaned:
            return  # nothing more can be recorded; the run is stopping
        self._pending.append((sql, params))
        if not self._scheduled:
            try:
                self._schedule(asyncio.get_running_loop())
                self._scheduled = True
            except RuntimeError:  # no loop: the caller flushes
                pass

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """The pending writes committed once the event loop's turn is over."""
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Commit every pending write in one transaction, then release the waiters. A
        failure (disk full, the journal gone) fails the waiters and reports the fault."""
        self._scheduled = False
        pending, self._pending = self._pending, []
        ledger, self._ledger = self._ledger, []
        waiters, self._waiters = self._waiters, []
        try:
            self._watch()
            if pending:
                self._commit(pending, ledger)
        except Exception as exc:
            # Whatever failed (an unexpected error too), nobody may wait for ever on a
            # commit that will not come, and no request may leave unrecorded.
            said = exc if isinstance(exc, self.errors) else f"{type(exc).__name__}: {exc}"
            fault = exc if isinstance(exc, JournalFault) else _fault(said, self.where)
            self._fail(fault, waiters)
            if self._orphaned:  # outcomes still go to the open connection; no request starts
                kept = [(sql, params) for sql, params in pending if sql != _START]
                with contextlib.suppress(sqlite3.Error, OSError):
                    self._commit(kept, [])
            return
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _commit(self, pending: list[tuple[str, tuple[Any, ...]]], ledger: list[tuple[int, bytes, int, int]]) -> None:
        self.db.execute("BEGIN")
        try:
            if ledger:
                self.db.executemany(_LEDGER, ledger)
            for sql, params in _batches(pending):
                self.db.executemany(sql, params)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                with contextlib.suppress(*self.errors):
                    self.db.execute("ROLLBACK")
            raise

    def _watch(self) -> None:
        """Every second or so: the journal file is still the one opened, the marker is
        still there (a state directory deleted mid-run must not go unnoticed)."""
        now = time.monotonic()
        if now < self._next_watch or self.fault is not None:
            return
        self._next_watch = now + WATCH_EVERY
        try:
            ours = self.path.stat().st_ino == self._ino
        except OSError:
            ours = False
        if not ours or not self._marker.exists():
            # Deleted (not replaced): the open connection still holds everything; it is
            # written back as the run ends.
            self._orphaned = ours or not self.path.exists()
            restored = "; the journal is restored from the run's open connection: rerun to continue"
            raise JournalFault(
                f"state directory: the journal {self.path} was deleted or replaced while the run was going on; "
                f"stopped sending{restored if self._orphaned else ''}"
            )

    def fail(self, fault: JournalFault) -> None:
        """A fault met outside a commit (a read the run waits on): the run stops as if a
        commit had failed, once."""
        if self.fault is None:
            self._fail(fault, [])

    def _fail(self, fault: JournalFault, waiters: list[asyncio.Future[None]]) -> None:
        self.fault = fault
        self._pending = []
        self._ledger = []
        for future in waiters:
            if not future.done():
                future.set_exception(fault)
        if self.on_fault is not None:
            self.on_fault(fault)

    def rows(self, import_id: int) -> Iterator[JournalRow]:
        """Every journaled row of an import, in order, a page at a time: no statement stays
        open while the caller holds the iterator (an open one would block the checkpoint
        at close, should the caller fail part-way)."""
        after = 0
        while True:
            page = self.db.execute(
                "SELECT row_number, status, http_status, substatus, detail, attempts, customer_ref "
                "FROM rows WHERE import_id = ? AND row_number > ? ORDER BY row_number LIMIT ?",
                (import_id, after, ROWS_PAGE),
            ).fetchall()
            for r in page:
                yield JournalRow(r[0], r[1], r[2], r[3] or "", r[4] or "", r[5], r[6] or "")
            if len(page) < ROWS_PAGE:
                return
            after = page[-1][0]
