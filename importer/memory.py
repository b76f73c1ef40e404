"""In-memory inputs for the library API: a pyarrow Table or RecordBatchReader, a pandas
or polars DataFrame, or any object exporting the Arrow C stream (``__arrow_c_stream__``).

They are read batch by batch with the exact-type rules of Parquet (``to_python``). Having
no file to hash, each carries the caller's ``import_key``: the key names the import in the
journal and in the report, and the content's hash tells a rerun of the same data (nothing
is sent again) from changed data under the same key (refused unless ``new_import``).

The hash is over values (``ContentHash``): the same rows however chunked, sliced or
dictionary-encoded are the same content. A one-shot stream (a RecordBatchReader, a C
stream) is spooled, dictionaries decoded, to an unlinked Arrow IPC file while it is
hashed, then read back from that file, so that nothing holds more than a batch in
memory; ``validate``, which needs no hash, reads it once directly. pandas and polars are
never imported here: an object is recognised by its Arrow export (or, for pandas, by its
type's module) and converted through pyarrow.
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
from importer.source import Batch, Row, Source, Stamp, arrow_batches, batch_rows, plain_array, plain_type

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
        else:
            self._reader = converted
            self.total_rows = None
        self.arrow_schema = converted.schema
        # Dictionaries decoded: the spool and the hash hold values, not their encoding.
        self._plain = pa.schema([pa.field(f.name, plain_type(f.type)) for f in self.arrow_schema])
        self.columns = list(self.arrow_schema.names)
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
        elif self._spool is not None:
            for i in range(self._spool.num_record_batches):
                yield self._spool.get_batch(i)
        else:
            yield from self._read_once()

    def _read_once(self) -> Iterator[Any]:
        """The stream itself, for a reader that needs no hash (``validate``): read once,
        as it can only be, and never spooled."""
        import pyarrow as pa

        if self._reader is None:
            raise InputError(f"{self.name}: a stream of batches can be read once, and it was read already")
        reader, self._reader = self._reader, None
        try:
            yield from reader
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InputError(f"{self.name}: cannot read the in-memory data ({exc})") from exc

    def rows(self) -> Iterator[Row]:
        return batch_rows(self._batches())

    def batches(self) -> Iterator[Batch]:
        return arrow_batches(self._batches())

    def scan(self, stopped: Callable[[], bool] = lambda: False) -> str:
        """Hash the content and spool a stream (see ``ContentHash``)."""
        import pyarrow as pa

        if self._reader is None and self._table is None:
            if self._spool is None:
                raise InputError(f"{self.name}: a stream of batches can be read once, and it was read already")
            return self._digest  # scanned already: the spool holds what the stream gave
        digest = ContentHash(self._plain)
        sink = None
        if self._reader is not None:
            fd, spool_path = tempfile.mkstemp(prefix="ecdp-import-", suffix=".arrow")
            os.close(fd)
            sink = pa.ipc.new_file(spool_path, self._plain)
            source: Iterator[Any] = iter(self._reader)
        else:
            source = iter(self._table.to_batches())
        rows = 0
        complete = False
        try:
            for batch in _rebatched((self._plain_batch(b) for b in source), self._plain):
                if stopped():
                    return ""
                digest.update(batch)
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
                self._reader = None
                with contextlib.suppress(OSError, pa.ArrowException):
                    sink.close()
                if complete:
                    self._spool = pa.ipc.open_file(pa.memory_map(spool_path))
                os.unlink(spool_path)  # a mapping stays readable; nothing is left behind
        self.total_rows = rows
        self.stamp = Stamp(size=digest.size, mtime_ns=0, inode=0)
        self._digest = digest.hexdigest()
        return self._digest

    def _plain_batch(self, batch: Any) -> Any:
        import pyarrow as pa

        return pa.RecordBatch.from_arrays([plain_array(c) for c in batch.columns], schema=self._plain)


class ContentHash:
    """SHA-256 of a table's values, the same however they are laid out in memory.

    Equal values hash equal, whatever their chunks, slices, dictionary encoding, string
    offsets' width (string or large_string, or a view), validity bitmap (absent or all
    set, bits past the end) or the bytes hidden under nulls; Arrow's IPC bytes depend on
    all of these. The same values under another type (int32 and int64, timestamps in ms
    and in us) are other content. Batches must come in fixed sizes (``_rebatched``) and
    be plain (``plain_array``): the hash is taken a column of a batch at a time, as a
    validity mask (only when there are nulls), then the valid values: fixed-width ones
    as their bytes, text and binary as their lengths and bytes, anything else (a struct,
    a list) as its Python values' repr.
    """

    def __init__(self, schema: Any) -> None:
        self._digest = hashlib.sha256(b"ecdp-import content 2\n")
        self.size = 0
        described = [(field.name, str(_hashed_type(field.type))) for field in schema]
        self._feed(repr(described).encode())

    def update(self, batch: Any) -> None:
        self._feed(batch.num_rows.to_bytes(8, "little"))
        for column in batch.columns:
            self._column(column)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def _feed(self, data: Any) -> None:
        self._digest.update(data)
        self.size += memoryview(data).nbytes

    def _column(self, column: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        kind = column.type
        if pa.types.is_boolean(kind):
            column, kind = column.cast(pa.uint8()), pa.uint8()
        fixed = _fixed_width(kind)
        if not fixed and not _has_bytes(kind):
            if not pa.types.is_null(kind):
                text = repr(_python_values(column)).encode()
                self._feed(len(text).to_bytes(8, "little"))
                self._feed(text)
            return
        if column.null_count:
            valid = column.is_valid()
            self._feed(b"N")
            self._feed(_values_bytes(valid.cast(pa.uint8()), 1))
            column = column.filter(valid)
        else:
            self._feed(b"A")
        if fixed:
            self._feed(_values_bytes(column, fixed))
            return
        self._feed(_values_bytes(pc.binary_length(column).cast(pa.int64()), 8))
        self._feed(_data_bytes(column))


def _hashed_type(kind: Any) -> Any:
    """The type named in the hash: text and binary whatever their offsets' width."""
    import pyarrow as pa

    if pa.types.is_string(kind):
        return pa.large_string()
    if pa.types.is_binary(kind):
        return pa.large_binary()
    return kind


def _fixed_width(kind: Any) -> int:
    """Bytes a value of ``kind`` takes, 0 unless a whole number of bytes per value."""
    import pyarrow as pa

    t = pa.types
    if t.is_boolean(kind) or t.is_null(kind) or isinstance(kind, pa.ExtensionType):
        return 0
    if not (t.is_primitive(kind) or t.is_decimal(kind) or t.is_fixed_size_binary(kind)):
        return 0
    bits: int = kind.bit_width
    return bits // 8 if bits % 8 == 0 else 0


def _has_bytes(kind: Any) -> bool:
    import pyarrow as pa

    t = pa.types
    return bool(t.is_string(kind) or t.is_large_string(kind) or t.is_binary(kind) or t.is_large_binary(kind))


def _values_bytes(array: Any, width: int) -> Any:
    """The bytes of a fixed-width array's values, from its offset (a slice's start)."""
    if not len(array):
        return b""
    start = array.offset * width
    return array.buffers()[1][start : start + len(array) * width]


def _data_bytes(array: Any) -> Any:
    """The bytes of a text or binary array's values, from its offset."""
    import pyarrow as pa

    if not len(array):
        return b""
    _, offsets, data = array.buffers()
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    ends = memoryview(offsets).cast("q" if large else "i")
    first, last = ends[array.offset], ends[array.offset + len(array)]
    return data[first:last] if data is not None else b""


def _python_values(column: Any) -> Any:
    """A nested or exotic column's values as Python sees them (equal values, equal repr);
    else its IPC bytes, canonical or not, rather than no hash at all."""
    import pyarrow as pa

    try:
        return column.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError, ArithmeticError):
        return pa.RecordBatch.from_arrays([column], ["v"]).serialize().to_pybytes()


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
