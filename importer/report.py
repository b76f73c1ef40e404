"""Report, errors-file and summary writers.

The report has one line per input row; its format follows the file extension
(``.csv``, ``.jsonl``, ``.parquet``). Writers stream: nothing holds all lines.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from importer.convert import to_text
from importer.errors import ConfigError, OutputError
from importer.source import Row, Unreadable

PARQUET_CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class ReportLine:
    source_file: str
    row_number: int
    status: str
    http_status: int | None = None
    substatus: str = ""
    detail: str = ""
    attempts: int = 0
    customer_ref: str = ""


COLUMNS = tuple(f.name for f in fields(ReportLine))


def report_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".jsonl", ".parquet"):
        return suffix[1:]
    raise ConfigError(f"report file {path!r} must end in .csv, .jsonl or .parquet")


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn a failed write of an output (a disk that filled up after the up-front check)
    into OutputError: no bug, nothing lost, a rerun writes it."""
    try:
        yield
    except OSError as exc:
        raise OutputError(
            f"cannot write {path} ({exc.strerror or exc}); every row's state is in the journal: "
            "free the space and rerun the same command to write it (nothing sent is sent again)"
        ) from exc


def write_report(path: str, lines: Iterable[ReportLine]) -> None:
    """Write every line to ``path`` in the format its extension names. The file is
    written beside its target and renamed over it: a run that fails part-way leaves the
    previous report, never half of a new one."""
    write_report_chunks(path, [map(_as_tuple, lines)])


def write_report_chunks(path: str, chunks: Iterable[Iterable[tuple[Any, ...]]]) -> None:
    """``write_report`` for lines as tuples in ``COLUMNS`` order, given in chunks (a batch
    of rows each: no object, and no generator step, per line)."""
    lines = itertools.chain.from_iterable(chunks)
    fmt = report_format(path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with writing(path):
            if fmt == "parquet":
                _write_parquet(partial, lines)
            else:
                with partial.open("w", encoding="utf-8", newline="") as fh:
                    if fmt == "csv":
                        writer = csv.writer(fh)
                        writer.writerow(COLUMNS)
                        for chunk in chunks:
                            writer.writerows(chunk)
                    else:
                        for line in lines:
                            fh.write(orjson.dumps(dict(zip(COLUMNS, line, strict=True))).decode() + "\n")
            os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def is_report(columns: list[str]) -> bool:
    """Whether a CSV's header is that of a report this tool wrote (not an input)."""
    return tuple(columns) == COLUMNS


def check_outputs(outputs: dict[str, str], inputs: Iterable[Path]) -> None:
    """Every output path is writable and is none of the inputs nor another output,
    checked before anything is sent (a report must never overwrite its input)."""
    taken: dict[str, str] = {os.path.realpath(p): f"input {p}" for p in inputs}
    for label, path in outputs.items():
        real = os.path.realpath(path)
        if real in taken:
            raise ConfigError(f"{label} {path} is also the {taken[real]}; it would be overwritten: choose another path")
        taken[real] = f"{label} path"
        _check_writable(label, Path(path))


def _check_writable(label: str, target: Path) -> None:
    if target.is_dir():
        raise ConfigError(f"{label} {target} is a directory; give a file path")
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a"):
            pass
    except OSError as exc:
        raise ConfigError(f"{label} {target}: cannot write there ({exc.strerror or exc})") from exc
    if not existed:
        target.unlink(missing_ok=True)


def _as_tuple(line: ReportLine) -> tuple[Any, ...]:
    # Spelled out: dataclasses.astuple deep-copies and costs more than the rest of a row.
    return (
        line.source_file,
        line.row_number,
        line.status,
        line.http_status,
        line.substatus,
        line.detail,
        line.attempts,
        line.customer_ref,
    )


def _write_parquet(target: Path, lines: Iterable[tuple[Any, ...]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [(c, pa.int64() if c in ("row_number", "http_status", "attempts") else pa.string()) for c in COLUMNS]
    )
    with pq.ParquetWriter(target, schema) as writer:
        chunk: list[dict[str, Any]] = []
        for line in lines:
            chunk.append(dict(zip(COLUMNS, line, strict=True)))
            if len(chunk) >= PARQUET_CHUNK:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        writer.write_table(pa.Table.from_pylist(chunk, schema=schema))


ERRORS_COLUMNS = ("_status", "_error", "_row")


class ErrorsWriter:
    """The original rows that ended invalid or rejected, plus ``_status``, ``_error`` and
    ``_row`` (the row's number in the original input), as UTF-8 comma CSV: a valid input
    for the same mapping. Rerunning an errors file writes those three columns anew, not a
    second set, and ``_row`` keeps pointing at the original export's row."""

    def __init__(self, path: str, columns: list[str]) -> None:
        self.columns = [c for c in columns if c not in ERRORS_COLUMNS]
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._fh = target.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow([*self.columns, *ERRORS_COLUMNS])

    def write(self, row: Row, status: str, error: str) -> None:
        values = [_cell(row.values.get(c)) for c in self.columns]
        original = _cell(row.values.get("_row")) or str(row.number)
        self._writer.writerow([*values, status, error, original])

    def close(self) -> None:
        self._fh.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Unreadable):
        return value.text
    # Undecodable bytes were kept as surrogates; write them as '?' so the file is UTF-8.
    return to_text(value).encode("utf-8", "replace").decode("utf-8")


def merged_columns(column_lists: Iterable[list[str]]) -> list[str]:
    """Union of several inputs' columns, in order of first appearance."""
    seen: dict[str, None] = {}
    for columns in column_lists:
        for c in columns:
            seen.setdefault(c, None)
    return list(seen)


def write_json(path: str, doc: dict[str, Any]) -> None:
    target = Path(path)
    with writing(path):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


def status_counts(lines: Iterator[ReportLine], counts: dict[str, int]) -> Iterator[ReportLine]:
    """Pass lines through, counting their statuses into ``counts``."""
    for line in lines:
        counts[line.status] = counts.get(line.status, 0) + 1
        yield line
