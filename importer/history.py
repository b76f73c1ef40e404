"""What a state directory holds: ``ecdp-import status`` (every import, newest first) and
``ecdp-import prune`` (finished imports older than a window, their rows and their ledger
entries). An event whose ledger entry is pruned can be sent again by a later import."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from importer.errors import ConfigError, StateError
from importer.journal import DB_NAME, DONE, REPORTED, Journal
from importer.postgres import DEFAULT_SCHEMA, PgJournal

_WINDOW = re.compile(r"(\d+)\s*([dhw])")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_window(text: str) -> timedelta:
    """``90d``, ``12w``, ``36h``."""
    found = _WINDOW.fullmatch(text.strip().lower())
    if not found:
        raise ConfigError(f"--older-than takes a number and a unit (h, d or w), like 90d; got {text!r}")
    return int(found.group(1)) * _UNIT[found.group(2)]


def overview(state_dir: str, state_url: str | None = None, schema: str = DEFAULT_SCHEMA) -> list[dict[str, Any]]:
    """Every import, newest first: file, content hash, rows, counts per status, when it
    started and finished. Read-only: it works while a run holds the directory (or the
    database of ``state_url``)."""
    if state_url:
        journal = PgJournal(state_url, schema, create=False)
        try:
            return _overview(journal.db, journal.columns())
        finally:
            journal.close()
    path = Path(state_dir) / DB_NAME
    if not path.is_file():
        raise StateError(f"no journal in {state_dir} (nothing imported with this state directory yet)")
    try:
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as db:
            return _overview(db, {str(r[1]) for r in db.execute("PRAGMA table_info(imports)")})
    except sqlite3.Error as exc:
        raise StateError(f"cannot read the journal {path}: {exc}") from exc


def _overview(db: Any, columns: set[str]) -> list[dict[str, Any]]:
    counts: dict[int, dict[str, int]] = {}
    for import_id, status, n in db.execute("SELECT import_id, status, count(*) FROM rows GROUP BY import_id, status"):
        shown = REPORTED.get(status, status)
        by_import = counts.setdefault(import_id, {})
        by_import[shown] = by_import.get(shown, 0) + n
    finished_at = "finished_at" if "finished_at" in columns else "NULL"
    scoped = "mapping_path" in columns  # a journal of an older version, read before any run migrated it
    targets = dict(_targets(db)) if scoped else {}
    extra = "i.content, i.mapping_path, i.target_id" if scoped else "i.fingerprint, NULL, 0"
    out = []
    query = f"SELECT i.id, i.path, i.total_rows, i.created_at, {finished_at}, {extra} FROM imports i ORDER BY i.id DESC"
    for import_id, file, total, created, finished, digest, mapping, target_id in db.execute(query):
        by_status = counts.get(import_id, {})
        missing = (total or 0) - sum(by_status.values())
        if missing > 0:
            by_status["not_attempted"] = missing
        done = total is not None and sum(by_status.get(s, 0) for s in DONE) == total
        out.append(
            {
                "file": file, "sha256": digest, "rows": total, "counts": by_status, "started": created,
                "finished": done, "finished_at": finished if done else None, "mapping": mapping,
                "target": targets.get(target_id),
            }
        )  # fmt: skip
    return out


def _targets(db: Any) -> Iterator[tuple[int, dict[str, str]]]:
    for target_id, base_url, key in db.execute("SELECT id, base_url, key_fingerprint FROM targets"):
        yield target_id, {"base_url": base_url, "key_fingerprint": key[:8]}


def render(imports: list[dict[str, Any]]) -> str:
    if not imports:
        return "no imports in this state directory"
    lines = []
    for i in imports:
        counts = ", ".join(f"{s} {n:,}" for s, n in sorted(i["counts"].items(), key=lambda kv: -kv[1]))
        state = f"finished {i['finished_at'] or ''}".rstrip() if i["finished"] else "UNFINISHED"
        rows = "?" if i["rows"] is None else f"{i['rows']:,}"
        lines.append(f"{i['started']}  {state:<36} {i['sha256'][:12]}  {rows:>10} rows  {i['file']}")
        target = i["target"]
        sent_to = f"{target['base_url']} (key {target['key_fingerprint']})" if target else "(recorded before targets)"
        lines.append(f"    mapping {i['mapping'] or '(recorded before mappings)'}; sent to {sent_to}")
        lines.append(f"    {counts or 'no rows recorded'}")
    return "\n".join(lines).replace("UNFINISHED", "unfinished")


def prune(
    state_dir: str, window: timedelta, dry_run: bool, state_url: str | None = None, schema: str = DEFAULT_SCHEMA
) -> tuple[list[str], int]:
    """Drop finished imports older than ``window`` with their rows and ledger entries, then
    compact; unfinished imports are never touched. Returns the imports dropped (a line
    each: when, file, rows) and the rows dropped."""
    if state_url:
        journal: Journal = PgJournal(state_url, schema, create=False)
    elif not (Path(state_dir) / DB_NAME).is_file():
        raise StateError(f"no journal in {state_dir}")
    else:
        journal = Journal(state_dir)
    try:
        journal.verified()
        journal.lock_all()
        cutoff = (datetime.now(UTC) - window).isoformat(timespec="seconds")
        old = [
            import_id
            for (import_id,) in journal.db.execute(
                "SELECT id FROM imports WHERE COALESCE(finished_at, created_at) < ?", (cutoff,)
            )
            if journal.is_finished(import_id)
        ]
        rows = sum(journal.db.execute("SELECT count(*) FROM rows WHERE import_id = ?", (i,)).fetchone()[0] for i in old)
        described = [
            f"{created}  {path}  ({total or 0:,} rows)"
            for i in old
            for path, created, total in journal.db.execute(
                "SELECT path, created_at, total_rows FROM imports WHERE id = ?", (i,)
            )
        ]
        if old and not dry_run:
            marks = ",".join("?" * len(old))
            journal.db.execute("BEGIN")
            for table, column in (
                ("ledger", "import_id"),
                ("rows", "import_id"),
                ("import_paths", "import_id"),
                ("remote_objects", "import_id"),
                ("imports", "id"),
            ):
                journal.db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", old)
            journal.db.execute("COMMIT")
            journal.compact()
        return described, rows
    finally:
        journal.close()
