"""Row filters (``filter:`` in the mapping): one export can feed several events.

Every condition must hold for a row to be sent; a row that fails one is ``skipped`` and
never sent. ``after`` is "on or after", ``before`` is "strictly before", so
``{after: 2024-01-01, before: 2025-01-01}`` is the year 2024.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from importer.convert import format_problem, parse_datetime, to_text
from importer.errors import MAX_ECHO, ConversionError, echo

TEXT_OPS = ("equals", "not_equals", "in", "not_in")
TIME_OPS = ("after", "before")
OPS = (*TEXT_OPS, *TIME_OPS, "not_empty")
KEYS = ("column", *OPS, "format")


class FilterValueError(ConversionError):
    """A date condition could not read the row's value: the row is invalid."""

    def __init__(self, column: str, exc: ConversionError) -> None:
        super().__init__(exc.problem, exc.value)
        self.column = column


@dataclass(frozen=True, slots=True)
class Condition:
    column: str
    op: str
    operand: Any
    formats: tuple[str, ...] = ()

    def describe(self) -> str:
        shown = self.operand
        if isinstance(shown, frozenset):
            shown = "[" + ", ".join(sorted(shown)) + "]"
        elif isinstance(shown, datetime):
            shown = shown.isoformat()
        return (
            f"{self.column} {self.op.replace('_', ' ')} {shown}"
            if self.op != "not_empty"
            else f"{self.column} not empty"
        )


def compile_filter(doc: Any, err: Callable[[str, str], None], tz: tzinfo) -> tuple[Condition, ...]:
    """Check the ``filter`` list, reporting problems through ``err(path, message)``."""
    if doc is None:
        return ()
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        err("filter", "must be a list of conditions like {column: status, equals: paid}")
        return ()
    conditions = []
    for i, item in enumerate(doc):
        path = f"filter[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("column"), str):
            err(path, "needs 'column: NAME' and one of " + ", ".join(OPS))
            continue
        unknown = [k for k in item if k not in KEYS]
        for key in unknown:
            err(f"{path}.{str(key)[:MAX_ECHO]}", f"unknown key {echo(key)} (expected one of {', '.join(KEYS)})")
        ops = [k for k in item if k in OPS]
        if len(ops) != 1:
            err(path, "needs exactly one of " + ", ".join(OPS))
            continue
        condition = _condition(path, item, ops[0], err, tz)
        if condition:
            conditions.append(condition)
    return tuple(conditions)


def _condition(
    path: str, item: dict[str, Any], op: str, err: Callable[[str, str], None], tz: tzinfo
) -> Condition | None:
    operand = item[op]
    fmt = item.get("format")
    formats = (fmt,) if isinstance(fmt, str) else fmt if isinstance(fmt, list) else ()
    if fmt is not None and (not formats or not all(isinstance(f, str) for f in formats)):
        err(f"{path}.format", "is a strptime format, or a list of them tried in order")
        return None
    for f in formats:
        if problem := format_problem(f):
            err(f"{path}.format", f"{echo(f)} {problem}")
            return None
    if op in ("in", "not_in"):
        if not isinstance(operand, list) or not operand or not all(_scalar(v) for v in operand):
            err(f"{path}.{op}", "must be a list of values")
            return None
        return Condition(item["column"], op, frozenset(to_text(v) for v in operand), tuple(formats))
    if op != "not_empty" and not _scalar(operand):
        err(f"{path}.{op}", f"must be one value, got {echo(operand)}")
        return None
    if op in TIME_OPS:
        try:
            bound = parse_datetime(to_text(operand))
        except ConversionError:
            err(f"{path}.{op}", f"must be an ISO date or date-time like 2024-01-01, got {echo(operand)}")
            return None
        return Condition(item["column"], op, bound if bound.tzinfo else bound.replace(tzinfo=tz), tuple(formats))
    if op == "not_empty":
        if operand not in (True, "true", "True", "TRUE"):
            err(f"{path}.not_empty", "must be true")
            return None
        return Condition(item["column"], op, None)
    return Condition(item["column"], op, to_text(operand))


def _scalar(value: Any) -> bool:
    return (isinstance(value, (str, int, float)) and not isinstance(value, bool)) or value is True or value is False


def skip_reason(conditions: tuple[Condition, ...], values: dict[str, Any], tz: tzinfo) -> str | None:
    """Why the row is filtered out, or None when every condition holds. A value that a
    date condition cannot read raises ConversionError: the row is invalid, not skipped."""
    for c in conditions:
        value = values.get(c.column)
        if not _holds(c, value, tz):
            return f"filter: {c.describe()} is not true"
    return None


def _holds(c: Condition, value: Any, tz: tzinfo) -> bool:
    if c.op == "not_empty":
        return value is not None
    if c.op in TIME_OPS:
        if value is None:
            return False
        try:
            moment = parse_datetime(value, c.formats or None)
        except ConversionError as exc:
            raise FilterValueError(c.column, exc) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        bound: datetime = c.operand
        return moment >= bound if c.op == "after" else moment < bound
    text = "" if value is None else to_text(value).strip()
    if c.op in ("equals", "not_equals"):
        expected: str = c.operand
        return (text == expected) == (c.op == "equals")
    words: frozenset[str] = c.operand
    return (text in words) == (c.op == "in")
