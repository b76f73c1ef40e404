"""Stream rows out of CSV and Parquet files, with their 1-based row numbers.

CSV values stay text (no type guessing: ``00123`` stays ``00123``); Parquet values keep
their real types (int stays int, decimal stays exact, timestamps keep their zone). Empty
cells and nulls become ``None``. Nothing here holds more than one batch of rows.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from importer.errors import InputError

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
PARQUET_BATCH_ROWS = 8192
_SURROGATE = re.compile("[\udc80-\udcff]")

# The csv module refuses fields over 128 KiB by default; real exports carry long texts.
csv.field_size_limit(64 * 1024 * 1024)


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


class Source:
    """An input file: its columns and a stream of its rows."""

    path: Path
    name: str
    columns: list[str]
    total_rows: int | None

    def rows(self) -> Iterator[Row]:
        raise NotImplementedError

    def estimate_rows(self) -> int:
        """Best current guess of the number of rows (exact for Parquet)."""
        raise NotImplementedError


def open_source(name: str, encoding: str = "utf-8", delimiter: str | None = None) -> Source:
    """Open ``name`` as CSV (plain or gzipped) or Parquet, by extension or magic bytes."""
    path = Path(name)
    if not path.exists():
        raise InputError(f"input file not found: {name}")
    if not path.is_file():
        raise InputError(f"input is not a file: {name}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read input {name}: {exc.strerror}") from exc
    if path.suffix.lower() in (".parquet", ".pq") or magic == b"PAR1":
        return ParquetSource(path, name)
    return CsvSource(path, name, encoding, delimiter, gzipped=magic[:2] == b"\x1f\x8b")


def _python_encoding(encoding: str) -> str:
    try:
        canonical = codecs.lookup(encoding).name
    except LookupError as exc:
        raise InputError(f"unknown encoding: {encoding}") from exc
    return "utf-8-sig" if canonical == "utf-8" else canonical


class CsvSource(Source):
    """A delimited text file; the delimiter is sniffed unless given."""

    def __init__(self, path: Path, name: str, encoding: str, delimiter: str | None, gzipped: bool = False) -> None:
        self.path = path
        self.name = name
        self.total_rows = None
        self.encoding = _python_encoding(encoding)
        self._gzipped = gzipped
        sample, whole, consumed = self._read_sample(encoding)
        if delimiter is not None:
            if delimiter in ("\\t", "tab"):
                delimiter = "\t"
            if len(delimiter) != 1:
                raise InputError(f"--delimiter must be one character, got {delimiter!r}")
        self.delimiter = delimiter or sniff_delimiter(sample)
        header = next(csv.reader(io.StringIO(sample), delimiter=self.delimiter), None)
        if not header:
            raise InputError(f"{name}: no header row (empty file?)")
        self.columns = _header_names([h.strip().lstrip("\ufeff").strip() for h in header])
        self._size = path.stat().st_size
        self._sample_estimate = _estimate_from_sample(sample, self.delimiter, self._size / max(consumed, 1))
        if whole:
            self.total_rows = self._sample_estimate  # the sample is the whole file
        self._rows_seen = 0
        self._raw: Any = None

    def _open_bytes(self) -> tuple[BinaryIO, BinaryIO]:
        """The byte stream to decode, and the file under it (whose position says how far
        a gzipped file has been read)."""
        raw = self.path.open("rb")
        stream = cast(BinaryIO, gzip.GzipFile(fileobj=raw)) if self._gzipped else raw
        return stream, raw

    def _read_sample(self, encoding: str) -> tuple[str, bool, int]:
        """The first block as text, whether it is the whole file, and the bytes it took."""
        stream, raw = self._open_bytes()
        try:
            head = stream.read(SAMPLE_BYTES)
            consumed = raw.tell()
        except (OSError, EOFError) as exc:
            raise InputError(f"{self.name}: cannot read ({exc})") from exc
        finally:
            stream.close()
            raw.close()
        whole = len(head) < SAMPLE_BYTES
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        try:
            return decoder.decode(head, final=whole), whole, consumed
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self.name}: cannot decode as {encoding} (byte 0x{head[exc.start]:02x} at "
                f"offset {exc.start}); pass the file's encoding with --encoding, e.g. --encoding cp1250"
            ) from exc

    def estimate_rows(self) -> int:
        """Rows seen so far scaled by the share of bytes read, or the sample's guess."""
        if self.total_rows is not None:
            return self.total_rows
        position = self._raw.tell() if self._raw is not None and not self._raw.closed else 0
        if self._rows_seen and position:
            return max(self._rows_seen, round(self._rows_seen * self._size / position))
        return self._sample_estimate

    def rows(self) -> Iterator[Row]:
        stream, self._raw = self._open_bytes()
        with self._raw, io.TextIOWrapper(stream, self.encoding, errors="surrogateescape", newline="") as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            next(reader, None)
            columns = self.columns
            width = len(columns)
            number = 0
            for record in reader:
                if _blank(record):
                    continue
                number += 1
                self._rows_seen = number
                yield _csv_row(number, record, columns, width)
            self.total_rows = number


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
        error = f"undecodable bytes in column {', '.join(map(repr, bad)) or 'extra fields'}; check --encoding"
    return Row(number, values, error)


def _estimate_from_sample(sample: str, delimiter: str, scale: float) -> int:
    """Rows in the file: the records in the first block times the file's size over the
    bytes that block took."""
    records = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if not _blank(r)]
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
        records = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if r]
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

    def __init__(self, path: Path, name: str) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.name = name
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise InputError(f"{name}: not a readable Parquet file ({exc})") from exc
        self.columns = list(self._file.schema_arrow.names)
        self.total_rows = self._file.metadata.num_rows

    def estimate_rows(self) -> int:
        return int(self.total_rows or 0)

    def rows(self) -> Iterator[Row]:
        number = 0
        for batch in self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for values in _to_python(batch):
                number += 1
                yield Row(number, values)


def _to_python(batch: Any) -> list[dict[str, Any]]:
    """Convert a record batch to dicts; nanosecond timestamps go to microseconds first,
    since Python's datetime cannot hold them (DateTime is sent at second precision)."""
    import pyarrow as pa

    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            column = column.cast(pa.timestamp("us", field.type.tz), safe=False)
        elif pa.types.is_dictionary(field.type):
            column = column.dictionary_decode()
        columns.append(column)
    rows: list[dict[str, Any]] = pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pylist()
    return rows
