"""What every state store must do, written once against the store's own tables (read
through a connection of the test's, never the run's) so that a second store (PostgreSQL,
issue 23) inherits these checks unchanged: add its ``StoreKind`` to ``STORES``.

- a row's in-flight mark (and its ledger claim) is committed before its request leaves;
- a run whose store fails mid-run reports the rows it could not finish as ``unknown``
  (never the store's own ``inflight``), each row once;
- a bucket object is "already imported" only in the same version, whatever its size.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from importer import RunConfig, run_import
from importer.journal import Journal
from importer.mapping import compile_mapping, parse_yaml
from importer.postgres import PgJournal
from importer.scope import scope_of
from importer.transport import Response
from tests.conftest import CUSTOMER_MAPPING, KEY, customers_csv, read_report

ROWS = 300
CONCURRENCY = 8


class SqliteStore:
    """Today's store: the journal in the state directory."""

    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.state_dir = str(tmp_path / "state")

    def config(self, **kwargs: Any) -> dict[str, Any]:
        return {"state_dir": self.state_dir, **kwargs}

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """``sql`` through a connection of our own: only what the run has committed."""
        db = sqlite3.connect(f"file:{self.state_dir}/journal.sqlite3?mode=ro", uri=True)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def break_commits(self, monkeypatch: pytest.MonkeyPatch, broken: Callable[[], bool]) -> None:
        """From when ``broken()`` turns true, every commit fails as on a full disk."""
        real = Journal._commit

        def commit(journal: Journal, *args: Any) -> None:
            if broken():
                raise sqlite3.OperationalError("database or disk is full")
            real(journal, *args)

        monkeypatch.setattr(Journal, "_commit", commit)

    def open(self) -> Journal:
        return Journal(self.state_dir, durable=False)


class PostgresStore(SqliteStore):
    """The state in a PostgreSQL schema of its own (``--state-url``)."""

    name = "postgres"

    def __init__(self, tmp_path: Path, url: str) -> None:
        super().__init__(tmp_path)
        self.url = url
        self.schema = f"c{uuid.uuid4().hex[:12]}"

    def config(self, **kwargs: Any) -> dict[str, Any]:
        return {"state_url": self.url, "state_schema": self.schema, **kwargs}

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"SET search_path TO {self.schema}")
            return db.execute(sql.replace("?", "%s"), params).fetchall()

    def open(self) -> Journal:
        return PgJournal(self.url, self.schema)

    def break_commits(self, monkeypatch: pytest.MonkeyPatch, broken: Callable[[], bool]) -> None:
        import psycopg

        real = PgJournal._commit

        def commit(journal: PgJournal, *args: Any) -> None:
            if broken():
                raise psycopg.errors.DiskFull("database or disk is full: could not extend file")
            real(journal, *args)

        monkeypatch.setattr(PgJournal, "_commit", commit)


STORES = [SqliteStore, PostgresStore]


@pytest.fixture(params=STORES, ids=lambda kind: kind.name)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param is PostgresStore:
        return PostgresStore(tmp_path, request.getfixturevalue("pg_server").url())
    return request.param(tmp_path)


class Recording:
    """A transport that answers 201 at once and, at the moment each request leaves, asks
    ``check(row_number)`` what the store holds for that row."""

    def __init__(self, check: Callable[[int], Any]) -> None:
        self.check = check
        self.seen: dict[int, Any] = {}

    async def post(self, path: str, body: bytes) -> Response:
        row = int(json.loads(body)["customerCrmId"][1:])  # C<n> is row n
        self.seen[row] = self.check(row)
        await asyncio.sleep(0)  # let the others in: requests overlap as on the wire
        return Response(201, b"")

    async def close(self) -> None:
        pass


def run(store: Any, work: Path, transport: Any, **kwargs: Any) -> Any:
    customers_csv(work / "in.csv", ROWS)
    (work / "m.yaml").write_text(CUSTOMER_MAPPING)
    config = RunConfig(
        **store.config(
            inputs=(str(work / "in.csv"),),
            mapping=str(work / "m.yaml"),
            api_key=KEY,
            base_url="http://127.0.0.1:9",
            report=str(work / "r.csv"),
            concurrency=CONCURRENCY,
            max_attempts=1,
            **kwargs,
        )
    )
    return run_import(config, transport=transport)


def test_each_row_is_durably_in_flight_with_its_ledger_claim_before_its_request_leaves(
    store: Any, tmp_path: Path
) -> None:
    def committed(row: int) -> tuple[Any, ...]:
        status = store.query("SELECT status FROM rows WHERE row_number = ?", row)
        claims = store.query("SELECT count(*) FROM ledger WHERE row_number = ?", row)[0][0]
        return (status[0][0] if status else None, claims)

    transport = Recording(committed)
    summary = run(store, tmp_path, transport)
    assert summary.exit_code == 0 and summary.counts == {"sent": ROWS}
    assert sorted(transport.seen) == list(range(1, ROWS + 1))
    assert Counter(transport.seen.values()) == {("inflight", 1): ROWS}


def test_a_run_whose_store_fails_reports_its_unfinished_rows_as_unknown(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = Recording(lambda row: None)
    store.break_commits(monkeypatch, lambda: len(transport.seen) >= 100)
    summary = run(store, tmp_path, transport)
    assert summary.exit_code == 3 and "database or disk is full" in summary.message
    report = read_report(tmp_path / "r.csv")
    assert [int(r["row_number"]) for r in report] == list(range(1, ROWS + 1))
    statuses = Counter(r["status"] for r in report)
    assert set(statuses) == {"sent", "unknown", "not_attempted"}, statuses
    # Every request that left is sent (its answer recorded) or unknown (it was not): none is
    # lost among not_attempted, and nothing that did not leave is called unknown.
    posted = set(transport.seen)
    assert {int(r["row_number"]) for r in report if r["status"] in ("sent", "unknown")} == posted
    assert 1 <= statuses["unknown"] <= CONCURRENCY + 1, statuses
    assert summary.counts == dict(statuses)


def test_an_object_is_done_only_in_the_version_that_was_imported(store: Any, tmp_path: Path) -> None:
    mapping = compile_mapping(parse_yaml(CUSTOMER_MAPPING), source="m.yaml")
    journal = store.open()
    try:
        journal.use_scope(scope_of(mapping, "http://127.0.0.1:1", "K"))
        import_id = journal.resolve_import("s3://b/orders.csv", "c" * 64, 100, False)
        journal.set_total(import_id, 0)  # nothing left to send: finished
        journal.remember_object("s3://b/orders.csv", "etag-1", 100, import_id)
        journal.flush()
        assert journal.finished_object("s3://b/orders.csv", "etag-1", 100) == ("c" * 64, 0)
        assert journal.finished_object("s3://b/orders.csv", "etag-2", 100) is None  # rewritten, same size
        assert journal.finished_object("s3://b/orders.csv", "etag-1", 101) is None
        assert journal.finished_object("s3://b/other.csv", "etag-1", 100) is None
        journal.use_scope(scope_of(mapping, "http://127.0.0.1:2", "K"))  # another target
        assert journal.finished_object("s3://b/orders.csv", "etag-1", 100) is None
        journal.use_scope(scope_of(mapping, "http://127.0.0.1:1", "K"))
        unfinished = journal.resolve_import("s3://b/later.csv", "d" * 64, 100, False)
        journal.set_total(unfinished, 5)  # five rows, none of them done yet
        journal.remember_object("s3://b/later.csv", "etag-9", 100, unfinished)
        journal.flush()
        assert journal.finished_object("s3://b/later.csv", "etag-9", 100) is None  # read it again, resume
    finally:
        journal.close()
