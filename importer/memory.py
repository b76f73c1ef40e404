"""In-memory inputs for the library API: a pyarrow Table or RecordBatchReader, a pandas
or polars DataFrame, or any object exporting the Arrow C stream (``__arrow_c_stream__``).

They are read batch by batch with the exact-type rules of Parquet (``to_python``). Having
no file to hash, each carries the caller's ``import_key``: the key names the import in the
journal and in the report, and the content's hash tells a rerun of the same data (nothing
is sent again) from changed data under the same key (refused unless ``new_import``).

A one-shot stream (a RecordBatchReader, a C stream) is spooled to an unlinked Arrow IPC
file while it is hashed, then read back from that file, so that nothing holds more than a
batch in memory. pandas and polars are never imported here: an object is recognised by
its Arrow export (or, for pandas, by its type's module) and converted through pyarrow.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from importer.errors import ConfigError, InputError
from importer.source import Batch, Row, Source, Stamp, arrow_batches, batch_rows

BATCH_ROWS = 8192
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}")
MEMORY_PREFIX = "memory:"


def is_in_memory(value: object) -> bool:
    """True for data the library reads from memory rather than a path or URL."""
    return not isinstance(value, (str, os.PathLike))


def check_import_key(key: str | None) -> str:
    if key is None:
        raise ConfigError(
            "in-memory data needs an import_key (e.g. import_key='orders-2026-11-26'): "
            "it names the import, so that a rerun with the same data sends nothing"
        )
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ConfigError(
            f"import_key must be 1-200 letters, digits or . _ : @ + = - (starting with a letter or digit), got {key!r}"
        )
    return key


class TableSource(Source):
    """In-memory Arrow data under an import key; ``path`` is a name, never a file."""

    def __init__(self, data: Any, name: str) -> None:
        import pyarrow as pa

        self.name = name
        self.path = Path(f"<{MEMORY_PREFIX}{name}>")
        self._table: Any = None
        self._reader: Any = None
        self._spool: Any = None
        self._digest = ""
        converted = _to_arrow(data, name)
        if isinstance(converted, pa.Table):
            self._table = converted
            self.total_rows = converted.num_rows
            schema = converted.schema
        else:
            self._reader = converted
            self.total_rows = None
            schema = converted.schema
        self.schema = schema
        self.columns = list(schema.names)
        self.stamp = Stamp(size=0, mtime_ns=0, inode=0)

    @property
    def origin(self) -> str:
        return MEMORY_PREFIX + self.name

    def estimate_rows(self) -> int:
        return int(self.total_rows or 0)

    def check_unchanged(self) -> None:
        """Memory has no modification time: its content hash is its identity."""

    def _batches(self) -> Iterator[Any]:
        if self._table is not None:
            yield from self._table.to_batches(max_chunksize=BATCH_ROWS)
            return
        if self._spool is None:
            raise InputError(f"{self.name}: a stream of batches can be read once; scan() spools it first")
        for i in range(self._spool.num_record_batches):
            yield self._spool.get_batch(i)

    def rows(self) -> Iterator[Row]:
        return batch_rows(self._batches())

    def batches(self) -> Iterator[Batch]:
        return arrow_batches(self._batches())

    def scan(self, stopped: Callable[[], bool] = lambda: False) -> str:
        """Hash the content (schema without metadata, then the data in fixed-size batches,
        so that the same rows hash alike however they were chunked) and spool a stream."""
        import pyarrow as pa

        digest = hashlib.sha256(self.schema.remove_metadata().serialize())
        sink = None
        if self._reader is not None:
            if self._spool is not None:
                return self._digest  # scanned already: a stream cannot be read twice
            fd, spool_path = tempfile.mkstemp(prefix="ecdp-import-", suffix=".arrow")
            os.close(fd)
            sink = pa.ipc.new_file(spool_path, self.schema)
            source: Iterator[Any] = iter(self._reader)
        else:
            source = iter(self._table.to_batches())
        rows = 0
        size = 0
        complete = False
        try:
            for batch in _rebatched(source, self.schema):
                if stopped():
                    return ""
                data = batch.serialize()
                digest.update(data)
                size += data.size
                rows += batch.num_rows
                if sink is not None:
                    sink.write_batch(batch)
            complete = True
        except OSError as exc:  # the spool's disk (pyarrow's IO errors are OSErrors too)
            raise InputError(
                f"{self.name}: no room to spool the stream in {tempfile.gettempdir()} ({exc}); "
                "set TMPDIR to a larger disk"
            ) from exc
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InputError(f"{self.name}: cannot read the in-memory data ({exc})") from exc
        finally:
            if sink is not None:
                with contextlib.suppress(OSError, pa.ArrowException):
                    sink.close()
                if complete:
                    self._spool = pa.ipc.open_file(pa.memory_map(spool_path))
                os.unlink(spool_path)  # a mapping stays readable; nothing is left behind
        self.total_rows = rows
        self.stamp = Stamp(size=size, mtime_ns=0, inode=0)
        self._digest = digest.hexdigest()
        return self._digest


def _rebatched(batches: Iterator[Any], schema: Any) -> Iterator[Any]:
    """The same rows in batches of exactly BATCH_ROWS (the last one shorter)."""
    import pyarrow as pa

    pending: list[Any] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        if held < BATCH_ROWS:
            continue
        table = pa.Table.from_batches(pending, schema).combine_chunks()
        start = 0
        while held - start >= BATCH_ROWS:
            yield _one_batch(table.slice(start, BATCH_ROWS), schema)
            start += BATCH_ROWS
        pending = [_one_batch(table.slice(start), schema)] if held > start else []
        held -= start
    if held:
        yield _one_batch(pa.Table.from_batches(pending, schema), schema)


def _one_batch(table: Any, schema: Any) -> Any:
    import pyarrow as pa

    combined = table.combine_chunks()
    arrays = [column.chunk(0) if column.num_chunks else pa.array([], column.type) for column in combined.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _to_arrow(data: Any, name: str) -> Any:
    """A pyarrow Table (data already in memory) or RecordBatchReader (a stream)."""
    import pyarrow as pa

    try:
        if isinstance(data, (pa.Table, pa.RecordBatchReader)):
            return data
        if isinstance(data, pa.RecordBatch):
            return pa.Table.from_batches([data])
        if type(data).__module__.split(".")[0] == "pandas":
            return pa.Table.from_pandas(data, preserve_index=False)
        if hasattr(data, "__arrow_c_stream__"):  # polars, duckdb, and pandas >= 2.2 among others
            return pa.RecordBatchReader.from_stream(data)
        if hasattr(data, "to_arrow"):
            return _to_arrow(data.to_arrow(), name)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InputError(f"{name}: cannot convert the in-memory data to Arrow ({exc})") from exc
    raise ConfigError(
        f"input of type {type(data).__name__} is neither a path nor tabular data "
        "(a pyarrow Table or RecordBatchReader, a pandas or polars DataFrame, or an Arrow C stream)"
    )
