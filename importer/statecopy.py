"""``ecdp-import state copy``: a state directory's journal, ledger included, into a
PostgreSQL schema, so that a team moving its nightly job from a VM's cron into containers
keeps every "already sent". Into an empty schema only (ids are kept as they are), in one
transaction, with every table's count checked before it commits."""

from __future__ import annotations

from pathlib import Path

from importer.errors import StateError
from importer.journal import DB_NAME, Journal
from importer.postgres import PgJournal

# Each table with its columns, in an order that keeps the referenced ids before the rows.
TABLES = {
    "targets": ("id", "fingerprint", "base_url", "key_fingerprint"),
    "imports": (
        "id", "path", "fingerprint", "size", "total_rows", "created_at", "finished_at", "content",
        "mapping_fingerprint", "mapping_path", "mapping_event", "target_id",
    ),
    "import_paths": ("path", "import_id"),
    "rows": ("import_id", "row_number", "status", "http_status", "substatus", "detail", "attempts", "customer_ref"),
    "ledger": ("target_id", "identity", "import_id", "row_number"),
    "remote_objects": ("url", "version", "size", "import_id"),
}  # fmt: skip


def copy_state(state_dir: str, url: str, schema: str) -> dict[str, int]:
    """Copy everything of ``state_dir`` into ``schema`` of ``url``; the rows copied per table."""
    if not (Path(state_dir) / DB_NAME).is_file():
        raise StateError(f"no journal in {state_dir} (nothing to copy)")
    source = Journal(state_dir)  # its lock: no run writes meanwhile; an older journal is migrated
    try:
        source.verified()
        target = PgJournal(url, schema)
        try:
            target.lock_all()  # and no run of the database's
            return _copy(source, target)
        finally:
            target.close()
    finally:
        source.close()


def _copy(source: Journal, target: PgJournal) -> dict[str, int]:
    db = target.db
    if db.execute("SELECT count(*) FROM imports").fetchone()[0]:
        raise StateError(f"{target.where} already holds imports: copy a state directory into an empty schema only")
    conn = db.conn  # type: ignore[attr-defined]  # psycopg's, for COPY
    copied: dict[str, int] = {}
    db.execute("BEGIN")
    try:
        for table, columns in TABLES.items():
            names = ", ".join(columns)
            with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as pipe:
                for row in source.db.execute(f"SELECT {names} FROM {table}"):
                    pipe.write_row(row)
            want = source.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            got = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if got != want:
                raise StateError(f"copying {table}: {got:,} rows arrived of {want:,}; nothing was copied")
            copied[table] = int(got)
        for table in ("targets", "imports"):  # new ids go on after the copied ones
            db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(max(id), 0) + 1, false) FROM {table}"
            )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return copied
