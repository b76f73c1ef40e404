"""Stream rows out of CSV and Parquet files, with their 1-based row numbers.

CSV values stay text (no type guessing: ``00123`` stays ``00123``); Parquet values keep
their real types (int stays int, decimal stays exact, timestamps keep their zone). Empty
cells and nulls become ``None``. Nothing here holds more than one batch of rows.

A source reads exactly the bytes it saw when it was opened (its ``stamp``): rows
appended to a file that is still being written are never read, and a change of size or
modification time while reading stops with "input changed while reading". ``scan``
reads the whole input once before anything is sent: it hashes the content (the
import's identity), counts the rows and refuses a file whose structure is broken (a
quote never closed, a damaged gzip stream, corrupt Parquet pages).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import hashlib
import io
import itertools
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from importer.errors import ConversionError, InputError, echo, masked

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
PARQUET_BATCH_ROWS = 8192
BATCH_ROWS = 4096  # rows a batch holds where the source has no batches of its own
STAMP_EVERY = 4096  # CSV records read at a time (a batch), with a check that the file is unchanged
_SURROGATE = re.compile("[\udc80-\udcff]")
# Chained after the last line: it ends up inside a field only when a quote is still open.
_EOF = "\ue000ecdp-import:end-of-input\ue000"
_BOM_ENCODINGS = {
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
}


@dataclass(frozen=True, slots=True)
class Row:
    """One data record of an input file.

    Attributes:
        number: 1-based data row number within its file (the header is not a row).
        values: column name -> value, ``None`` for an empty cell or null.
        error: why the record itself is broken (ragged, undecodable), else ``None``.
    """

    number: int
    values: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive rows of one input, column by column (the renderer's unit of work).

    Attributes:
        start: the number of its first row.
        columns: column name -> its values in row order (``None`` for empty or null).
        errors: index in the batch -> why that record is broken (see ``Row.error``).
    """

    start: int
    size: int
    columns: dict[str, list[Any]]
    errors: dict[int, str]

    def row(self, index: int) -> Row:
        values = {name: column[index] for name, column in self.columns.items()}
        return Row(self.start + index, values, self.errors.get(index))

    def rows(self) -> Iterator[Row]:
        return (self.row(i) for i in range(self.size))


def rows_batch(rows: list[Row], columns: list[str]) -> Batch:
    """The batch holding ``rows`` (consecutive, numbered from ``rows[0].number``)."""
    values = {name: [row.values.get(name) for row in rows] for name in columns}
    errors = {i: row.error for i, row in enumerate(rows) if row.error}
    return Batch(rows[0].number if rows else 1, len(rows), values, errors)


class Unreadable:
    """A Parquet value that has no faithful Python form (a timestamp past year 9999,
    bytes that are not UTF-8): converting it makes its row invalid, never the run fail.

    Attributes:
        problem: why it cannot be used (``timestamp out of range``).
        text: the value as the file holds it, for ``--errors``.
    """

    __slots__ = ("problem", "text")

    def __init__(self, problem: str, text: str) -> None:
        self.problem = problem
        self.text = text

    def fail(self) -> ConversionError:
        return ConversionError(self.problem, self.text)

    def __repr__(self) -> str:
        return f"Unreadable({self.problem!r})"


@dataclass(frozen=True, slots=True)
class Stamp:
    """What identifies the bytes a run reads: their size and modification time."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


class Source:
    """An input file: its columns and a stream of its rows."""

    path: Path
    name: str
    columns: list[str]
    total_rows: int | None
    stamp: Stamp

    remote: Any = None  # the object-store version (remote.RemoteObject) a local copy holds
    arrow_schema: Any = None  # the Arrow schema of typed inputs (Parquet, in-memory); CSV is all text

    @property
    def origin(self) -> str:
        """Where the rows come from, as the journal remembers it: the file's real path,
        or an object's URL."""
        return str(self.remote.url) if self.remote is not None else os.path.realpath(self.path)

    def rows(self) -> Iterator[Row]:
        raise NotImplementedError

    def estimate_rows(self) -> int:
        """Best current guess of the number of rows (exact for Parquet)."""
        raise NotImplementedError

    def batches(self) -> Iterator[Batch]:
        """The rows as batches (the same rows ``rows()`` gives): a CSV chunk or an Arrow
        record batch each, else ``BATCH_ROWS`` rows."""
        chunk: list[Row] = []
        for row in self.rows():
            chunk.append(row)
            if len(chunk) >= BATCH_ROWS:
                yield rows_batch(chunk, self.columns)
                chunk = []
        if chunk:
            yield rows_batch(chunk, self.columns)

    def scan(self, stopped: Callable[[], bool] = lambda: False) -> str:
        """Read the whole input once: return its SHA-256, set ``total_rows``, and raise
        InputError if its structure is broken. Nothing is sent before this returns.
        ``stopped`` is polled now and then: when it turns true the scan ends early."""
        raise NotImplementedError

    def check_types(self, mapped: dict[str, str]) -> None:
        """Raise InputError naming every mapped column (name -> where the mapping uses it)
        whose Arrow type has no API value (a struct, a duration): before anything is sent,
        as one error, not a pyarrow exception halfway through a run. Unmapped columns may
        hold anything: they only go to ``--errors``."""
        if self.arrow_schema is None:
            return
        problems = []
        for field in self.arrow_schema:
            problem = arrow_type_problem(field.type) if field.name in mapped else None
            if problem:
                problems.append(f"column {echo(field.name)} ({mapped[field.name]}) holds {field.type}, {problem}")
        if problems:
            raise InputError(f"{self.name}: {'; '.join(problems)}; nothing was sent")

    def check_unchanged(self) -> None:
        """Raise InputError if the file's size or modification time moved since open."""
        try:
            now = Stamp.of(self.path)
        except OSError as exc:
            raise InputError(f"{self.name}: input changed while reading: it is gone ({exc.strerror})") from exc
        if now != self.stamp:
            raise InputError(f"{self.name}: input changed while reading: is it still being written?")


def open_source(name: str, encoding: str = "utf-8", delimiter: str | None = None, path: Path | None = None) -> Source:
    """Open ``name`` as CSV (plain or gzipped) or Parquet, by extension or magic bytes;
    ``path``, when given, is where its bytes are (a local copy of an object)."""
    path = path or Path(name)
    if not path.exists():
        raise InputError(f"input file not found: {name}")
    if not path.is_file():
        raise InputError(f"input is not a file: {name}")
    try:
        stamp = Stamp.of(path)
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read input {name}: {exc.strerror}") from exc
    if path.suffix.lower() in (".parquet", ".pq") or magic == b"PAR1":
        return ParquetSource(path, name, stamp)
    return CsvSource(path, name, encoding, delimiter, stamp, gzipped=magic[:2] == b"\x1f\x8b")


def text_encoding(encoding: str) -> str:
    """The Python codec for ``--encoding``: text encodings only (not base64, rot13, zlib)."""
    try:
        info = codecs.lookup(encoding)
    except (LookupError, ValueError) as exc:
        raise InputError(f"unknown encoding: {encoding!r}") from exc
    if not getattr(info, "_is_text_encoding", True):
        raise InputError(f"--encoding {encoding!r} is not a text encoding (e.g. utf-8, cp1250, latin-1)")
    return "utf-8-sig" if info.name == "utf-8" else info.name


# Byte-order marks that name another encoding than the one given (UTF-32 before UTF-16:
# its little-endian mark starts with UTF-16's).
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)  # fmt: skip


class _Bounded(io.RawIOBase):
    """The first ``size`` bytes of a file, hashed as they are read."""

    def __init__(self, path: Path, size: int) -> None:
        self._fh = path.open("rb")
        self._left = size
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self._left]
        n = self._fh.readinto(view) or 0
        self.digest.update(view[:n])
        self._left -= n
        return n

    def drain(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Read (and hash) the rest; ``stopped`` is asked between blocks of 1 MiB."""
        while self.read(1 << 20):
            if stopped():
                return

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()
        super().close()


def _damaged(name: str, exc: BaseException) -> InputError:
    detail = str(exc) or type(exc).__name__
    return InputError(f"{name}: damaged gzip file ({detail}); nothing was sent")


class CsvSource(Source):
    """A delimited text file; the delimiter is sniffed unless given."""

    def __init__(
        self, path: Path, name: str, encoding: str, delimiter: str | None, stamp: Stamp, gzipped: bool = False
    ) -> None:
        self.path = path
        self.name = name
        self.stamp = stamp
        self.total_rows = None
        self.encoding = text_encoding(encoding)
        self._gzipped = gzipped
        sample, whole, consumed = self._read_sample(encoding)
        if delimiter is not None:
            if delimiter in ("\\t", "tab"):
                delimiter = "\t"
            if len(delimiter) != 1:
                raise InputError(f"--delimiter must be one character, got {delimiter!r}")
        self.delimiter = delimiter or sniff_delimiter(sample)
        try:
            header = next(csv.reader(io.StringIO(sample, newline=""), delimiter=self.delimiter), None)
        except csv.Error as exc:
            raise InputError(f"{name}: line 1: broken header ({exc})") from exc
        if not header:
            raise InputError(f"{name}: no header row (empty file?)")
        self.columns = _header_names([h.strip().lstrip("\ufeff").strip() for h in header])
        self._sample_estimate = _estimate_from_sample(sample, self.delimiter, stamp.size / max(consumed, 1))
        if whole:
            self.total_rows = self._sample_estimate  # the sample is the whole file
        self._raw: _Bounded | None = None

    def _open_bytes(self) -> tuple[BinaryIO, _Bounded]:
        """The byte stream to decode, and the bounded file under it (whose position says
        how far a gzipped file has been read, and whose digest is the content's hash)."""
        raw = _Bounded(self.path, self.stamp.size)
        stream = cast(BinaryIO, gzip.GzipFile(fileobj=raw)) if self._gzipped else cast(BinaryIO, raw)
        return stream, raw

    def _read_sample(self, encoding: str) -> tuple[str, bool, int]:
        """The first block as text, whether it is the whole file, and the bytes it took."""
        stream, raw = self._open_bytes()
        try:
            head = stream.read(SAMPLE_BYTES)
            consumed = raw.tell()
        except (OSError, EOFError, zlib.error) as exc:
            raise (
                _damaged(self.name, exc) if self._gzipped else InputError(f"{self.name}: cannot read ({exc})")
            ) from exc
        finally:
            stream.close()
            raw.close()
        whole = len(head) < SAMPLE_BYTES
        boms = _BOM_ENCODINGS.get(self.encoding)
        if boms and not head.startswith(boms):
            raise InputError(
                f"{self.name}: {encoding} text must start with a byte-order mark; "
                f"pass --encoding {self.encoding}-le or {self.encoding}-be"
            )
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        try:
            return decoder.decode(head, final=whole), whole, consumed
        except UnicodeDecodeError as exc:
            bom = next((name for mark, name in _FOREIGN_BOMS if head.startswith(mark)), None)
            hint = (
                f"it starts with a {bom} byte-order mark: pass --encoding {bom}"
                if bom
                else "pass the file's encoding with --encoding, e.g. --encoding cp1250"
            )
            raise InputError(
                f"{self.name}: cannot decode as {encoding} (byte 0x{head[exc.start]:02x} at offset {exc.start}); {hint}"
            ) from exc
        except (UnicodeError, ValueError) as exc:
            raise InputError(f"{self.name}: cannot decode as {encoding} ({exc}); check --encoding") from exc

    def estimate_rows(self) -> int:
        """The exact count once the file was scanned or read, else the sample's guess."""
        return self._sample_estimate if self.total_rows is None else self.total_rows

    def _reader(self, fh: Any) -> Any:
        return csv.reader(itertools.chain(fh, (_EOF,)), delimiter=self.delimiter)

    def _chunks(self) -> Iterator[list[list[str]]]:
        """Every data record (header and blank lines left out), read a chunk at a time,
        checking the structure: a csv error, or a quote still open at the end, names the
        line its record starts on."""
        stream, raw = self._open_bytes()
        self._raw = raw
        with raw, io.TextIOWrapper(stream, self.encoding, errors="surrogateescape", newline="") as fh:
            reader = self._reader(fh)
            try:
                next(reader, None)
                while chunk := list(itertools.islice(reader, STAMP_EVERY)):
                    self.check_unchanged()
                    last = chunk[-1]
                    if last and last[-1].endswith(_EOF):  # only the last record can hold it
                        if last != [_EOF]:
                            raise InputError(
                                f"{self.name}: {self._broken_line()}: a quoted field opened in the record "
                                "starting here is never closed (an unclosed quote); fix the file, nothing was sent"
                            )
                        chunk.pop()
                    # A blank or whitespace-only line is not a row (a quoted "" on its own line is).
                    if min(map(len, chunk), default=2) < 2:  # only records of 0 or 1 fields can be blank
                        chunk = [r for r in chunk if len(r) > 1 or (r and not r[0].isspace())]
                    yield chunk
            except csv.Error as exc:
                raise InputError(
                    f"{self.name}: {self._broken_line()}: broken CSV record ({exc}); "
                    "a quote left open makes one field swallow the lines after it"
                ) from exc
            except (OSError, EOFError, zlib.error) as exc:
                raise (
                    _damaged(self.name, exc) if self._gzipped else InputError(f"{self.name}: cannot read ({exc})")
                ) from exc
            raw.drain()
        self.check_unchanged()

    def _broken_line(self) -> str:
        """``line N``, N the line the first broken record starts on: the file read again
        record by record, which only a broken file pays for."""
        line = 0
        try:
            stream, raw = self._open_bytes()
            with raw, io.TextIOWrapper(stream, self.encoding, errors="surrogateescape", newline="") as fh:
                reader = self._reader(fh)
                with contextlib.suppress(csv.Error):
                    next(reader, None)
                    line = reader.line_num
                    for record in reader:
                        if record and record[-1].endswith(_EOF):
                            break
                        line = reader.line_num
        except (OSError, EOFError, zlib.error):  # gone or changed since: the problem still stands
            return "a record whose line could not be found (the file could not be read again)"
        return f"line {line + 1}"

    def _records(self) -> Iterator[list[str]]:
        return itertools.chain.from_iterable(self._chunks())

    def rows(self) -> Iterator[Row]:
        columns = self.columns
        width = len(columns)
        number = 0
        for record in self._records():
            number += 1
            yield _csv_row(number, record, columns, width)
        self.total_rows = number

    def batches(self) -> Iterator[Batch]:
        """A batch per chunk read (up to ``STAMP_EVERY`` records)."""
        columns = self.columns
        width = len(columns)
        number = 0
        for chunk in self._chunks():
            if not chunk:
                continue
            start, number = number + 1, number + len(chunk)
            if set(map(len, chunk)) != {width} or _SURROGATE.search("".join(itertools.chain.from_iterable(chunk))):
                yield rows_batch([_csv_row(start + i, r, columns, width) for i, r in enumerate(chunk)], columns)
                continue
            fields = zip(*chunk, strict=True)
            values = {name: _blank_is_none(column) for name, column in zip(columns, fields, strict=True)}
            yield Batch(start, len(chunk), values, {})
        self.total_rows = number

    def scan(self, stopped: Callable[[], bool] = lambda: False) -> str:
        count = 0
        for chunk in self._chunks():
            count += len(chunk)
            if stopped():
                return ""
        self.total_rows = count
        assert self._raw is not None
        return self._raw.digest.hexdigest()


def _blank_is_none(column: tuple[str, ...]) -> list[str | None]:
    """A column's values, an empty or whitespace-only one as None (as ``_csv_row`` does);
    the two C-speed scans spare the per-value test to a column that has no blank."""
    if "" in column or any(map(str.isspace, column)):
        return [v if v and not v.isspace() else None for v in column]
    return list(column)


def _blank(record: list[str]) -> bool:
    """A blank or whitespace-only line is not a row (a quoted "" on its own line is)."""
    return not record or (len(record) == 1 and bool(record[0]) and not record[0].strip())


def _header_names(names: list[str]) -> list[str]:
    """Spreadsheet exports carry unnamed and repeated columns (a trailing delimiter, two
    "note" columns): name them ``column_4``, ``note_2`` so that every column has a key;
    a mapping that needs one can use that name."""
    seen: set[str] = set()
    out = []
    for i, name in enumerate(names, start=1):
        candidate = name or f"column_{i}"
        n = 2
        while candidate in seen:
            candidate, n = f"{name or f'column_{i}'}_{n}", n + 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _csv_row(number: int, record: list[str], columns: list[str], width: int) -> Row:
    values = {c: (v if v.strip() else None) for c, v in zip(columns, record, strict=False)}
    error = None
    if len(record) > width and not any(v.strip() for v in record[width:]):
        pass  # empty trailing fields (a trailing delimiter) carry nothing
    elif len(record) != width:
        error = f"row has {len(record)} fields, the header has {width}"
        for c in columns[len(record) :]:
            values[c] = None
    if _SURROGATE.search("".join(record)):
        bad = [c for c, v in zip(columns, record, strict=False) if _SURROGATE.search(v)]
        named = ", ".join(repr(masked(c)) for c in bad)  # a header of data names customers
        error = f"undecodable bytes in column {named or 'extra fields'}; check --encoding"
    return Row(number, values, error)


def _sample_records(sample: str, delimiter: str) -> list[list[str]]:
    """The complete records of a sample; a record the sample cuts short is left out."""
    out: list[list[str]] = []
    try:
        for record in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
            out.append(record)
    except csv.Error:
        pass  # the sample may end inside a long quoted field; the full scan words errors
    return out


def _estimate_from_sample(sample: str, delimiter: str, scale: float) -> int:
    """Rows in the file: the records in the first block times the file's size over the
    bytes that block took."""
    records = [r for r in _sample_records(sample, delimiter) if not _blank(r)]
    rows = max(0, len(records) - 1)
    return max(rows, round(rows * scale))


def sniff_delimiter(sample: str) -> str:
    """Pick the delimiter among comma, semicolon, tab and pipe that splits the sample best.

    The winner gives the header more than one field and the most following records the
    header's width; ties go to the earlier candidate (comma first).
    """
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last record short
    text = "".join(lines[:50])
    best, best_score = ",", (-1, -1.0, -1)
    for delim in DELIMITERS:
        records = [r for r in _sample_records(text, delim) if r]
        if not records:
            continue
        width = len(records[0])
        body = records[1:]
        consistent = sum(len(r) == width for r in body) / len(body) if body else 1.0
        score = (int(width > 1), consistent if width > 1 else 0.0, width)
        if score > best_score:
            best, best_score = delim, score
    return best


class ParquetSource(Source):
    """A Parquet file, read batch by batch with exact Python types."""

    def __init__(self, path: Path, name: str, stamp: Stamp) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.name = name
        self.stamp = stamp
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise InputError(f"{name}: not a readable Parquet file ({exc})") from exc
        self.arrow_schema = self._file.schema_arrow
        self.columns = list(self.arrow_schema.names)
        self.total_rows = self._file.metadata.num_rows

    def estimate_rows(self) -> int:
        return int(self.total_rows or 0)

    def _batches(self) -> Iterator[Any]:
        try:
            for count, batch in enumerate(self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS)):
                if count % 16 == 0:
                    self.check_unchanged()
                yield batch
        except InputError:
            raise
        except Exception as exc:  # corrupt pages raise OSError, ArrowInvalid and others
            raise InputError(f"{self.name}: damaged Parquet file ({exc}); nothing was sent") from exc
        self.check_unchanged()

    def rows(self) -> Iterator[Row]:
        return batch_rows(self._batches())

    def batches(self) -> Iterator[Batch]:
        return arrow_batches(self._batches())

    def scan(self, stopped: Callable[[], bool] = lambda: False) -> str:
        with _Bounded(self.path, self.stamp.size) as raw:
            raw.drain(stopped)
        for _ in self._batches():
            if stopped():
                return ""
        return raw.digest.hexdigest()


def batch_rows(batches: Iterator[Any]) -> Iterator[Row]:
    """The rows of Arrow record batches, numbered from 1, with exact Python values."""
    number = 0
    for batch in batches:
        for values in to_python(batch):
            number += 1
            yield Row(number, values)


def arrow_batches(batches: Iterator[Any]) -> Iterator[Batch]:
    """Arrow record batches as Batches, numbered from 1, with exact Python values."""
    start = 1
    for batch in batches:
        values = {name: _column_values(column) for name, column in zip(batch.schema.names, batch.columns, strict=True)}
        yield Batch(start, batch.num_rows, values, {})
        start += batch.num_rows


def to_python(batch: Any) -> list[dict[str, Any]]:
    """Convert a record batch to dicts, column by column, keeping each value exact:
    nanosecond timestamps go to microseconds (DateTime is sent at second precision),
    binary becomes UTF-8 text, float32 its shortest decimal at float32 width, and a value
    Python cannot hold becomes ``Unreadable`` (its row is invalid, the run goes on)."""
    names = batch.schema.names
    columns = [_column_values(column) for column in batch.columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def arrow_type_problem(kind: Any) -> str | None:
    """Why values of the Arrow type ``kind`` cannot become API values, else None.

    Plain values are read (numbers, decimals, text, binary as UTF-8 text, dates, times,
    timestamps), through a dictionary or run-end encoding too, and lists of them (joined
    with commas, as segment ids are). A duration or an interval has no API type and no
    text form the API would read; a struct, map or union holds several values for one
    field; an extension type means what its package says, which the importer cannot know.
    """
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(kind) or t.is_run_end_encoded(kind):
        return arrow_type_problem(kind.value_type)
    if _is_list(kind):
        item = kind.value_type
        while t.is_dictionary(item) or t.is_run_end_encoded(item):
            item = item.value_type
        if _scalar_problem(item) is None:
            return None
        return "lists of values the importer cannot convert: only lists of plain values (numbers, text, dates) are read"
    return _scalar_problem(kind)


def _scalar_problem(kind: Any) -> str | None:
    import pyarrow as pa

    t = pa.types
    if t.is_duration(kind):
        return "which has no API type: cast it to a number (of seconds, say) or to text"
    if t.is_interval(kind):
        return "which has no API type: cast it to text"
    if t.is_struct(kind) or t.is_map(kind) or t.is_union(kind):
        return "several values where an API field takes one: put the parts you need in columns of their own"
    if _is_list(kind):
        return "lists of lists: only lists of plain values (numbers, text, dates) are read"
    if isinstance(kind, pa.ExtensionType) or not (
        t.is_null(kind)
        or t.is_boolean(kind)
        or t.is_integer(kind)
        or t.is_floating(kind)
        or t.is_decimal(kind)
        or _is_text(kind)
        or _is_binary(kind)
        or t.is_date(kind)
        or t.is_time(kind)
        or t.is_timestamp(kind)
    ):
        return "which the importer cannot convert: cast it to text or a number"
    return None


def _is_list(kind: Any) -> bool:
    import pyarrow as pa

    t = pa.types
    return bool(
        t.is_list(kind)
        or t.is_large_list(kind)
        or t.is_fixed_size_list(kind)
        or t.is_list_view(kind)
        or t.is_large_list_view(kind)
    )


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


def _is_binary(kind: Any) -> bool:
    import pyarrow as pa

    t = pa.types
    return bool(t.is_binary(kind) or t.is_large_binary(kind) or t.is_binary_view(kind) or t.is_fixed_size_binary(kind))


def plain_type(kind: Any) -> Any:
    """The type ``plain_array`` gives an array of type ``kind``."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind) or pa.types.is_run_end_encoded(kind):
        return plain_type(kind.value_type)
    if pa.types.is_string_view(kind):
        return pa.large_string()
    if pa.types.is_binary_view(kind):
        return pa.large_binary()
    return kind


def plain_array(column: Any) -> Any:
    """The values of ``column`` without their encoding: a dictionary or run-end encoded
    array decoded, a view array as its large form (pyarrow has no take or length kernels
    for views, so a polars Categorical, whose dictionary is a string view, cannot be
    decoded otherwise)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        values = plain_array(column.dictionary)
        if values is column.dictionary:
            return column.dictionary_decode()
        return pa.DictionaryArray.from_arrays(column.indices, values).dictionary_decode()
    if pa.types.is_run_end_encoded(kind):
        return plain_array(pc.run_end_decode(column))
    if kind != plain_type(kind):
        return column.cast(plain_type(kind))
    return column


def _column_values(column: Any) -> list[Any]:
    import pyarrow as pa

    column = plain_array(column)
    kind = column.type
    if arrow_type_problem(kind):  # an unmapped column (mapped ones are checked up front): only for --errors
        return _as_far_as_possible(column)
    if _is_list(kind):
        return _list_values(column)
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        column = column.cast(pa.timestamp("us", kind.tz), safe=False)
    if _is_binary(kind):
        return _blanks_as_none([_utf8(v) for v in column.to_pylist()])
    if pa.types.is_float32(kind) or pa.types.is_float16(kind):
        from decimal import Decimal

        return [None if v is None else Decimal(v) for v in column.cast(pa.string()).to_pylist()]
    try:
        values: list[Any] = column.to_pylist()
    except (ValueError, OverflowError, ArithmeticError):
        values = _one_by_one(column)
    return _blanks_as_none(values) if _is_text(kind) else values


def _blanks_as_none(values: list[Any]) -> list[Any]:
    """Empty and whitespace-only text is no value, as an empty CSV cell is: ``""`` from a
    DataFrame read with ``keep_default_na=False`` omits the field, it is not a value."""
    if "" not in values and not any(isinstance(v, str) and v.isspace() for v in values):
        return values
    return [None if isinstance(v, str) and (not v or v.isspace()) else v for v in values]


def _list_values(column: Any) -> list[Any]:
    """A list column's values as Python lists, each item converted as a column of its
    own would be (binary items as text, not as ``b'...'``)."""
    items = iter(_column_values(column.flatten()))
    return [None if n is None else list(itertools.islice(items, n)) for n in column.value_lengths().to_pylist()]


def _as_far_as_possible(column: Any) -> list[Any]:
    """Values of a type the importer does not convert, as Python holds them, or
    ``Unreadable`` where even that fails."""
    import pyarrow as pa

    try:
        values: list[Any] = column.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError, ArithmeticError):
        values = [Unreadable(f"has the Arrow type {column.type}, which cannot be read", "?")] * len(column)
    return values


def _utf8(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return Unreadable("is binary data that is not UTF-8 text", value[:40].decode("utf-8", "replace"))


def _one_by_one(column: Any) -> list[Any]:
    """A column some of whose values do not fit Python's types (dates past 9999, text
    that is not UTF-8 in a damaged file): each such value becomes ``Unreadable``."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return [_utf8(v) for v in column.cast(pa.large_binary()).to_pylist()]
    try:
        texts = column.cast(pa.string()).to_pylist()
    except (pa.ArrowException, ValueError):
        texts = ["?"] * len(column)
    out: list[Any] = []
    for i, text in enumerate(texts):
        try:
            out.append(column[i].as_py())
        except (ValueError, OverflowError, ArithmeticError):
            out.append(Unreadable("is out of range (years 1 to 9999)", text))
    return out
