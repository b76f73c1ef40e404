"""The validate preview: problems grouped by column and kind, with counts and examples,
read before a long backfill starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from importer.errors import shown
from importer.payload import Rendered


@dataclass
class _Group:
    count: int = 0
    examples: list[tuple[str, int, Any]] = field(default_factory=list)


class ProblemSummary:
    """Counts invalid rows' problems per (where, kind), keeping the first examples."""

    def __init__(self, examples: int = 3) -> None:
        self.examples = examples
        self.groups: dict[tuple[str, str], _Group] = {}

    def add(self, source: str, row_number: int, rendered: Rendered) -> None:
        for problem in rendered.errors:
            group = self.groups.setdefault((problem.where or "row", problem.kind), _Group())
            group.count += 1
            if len(group.examples) < self.examples:
                group.examples.append((source, row_number, problem.value))

    def lines(self, several_files: bool) -> list[str]:
        """``orderedAt ...: 312 rows: does not match format %Y-%m-%d — row 17 '31/02/2024'``,
        most frequent first."""
        out = []
        for (where, kind), group in sorted(self.groups.items(), key=lambda item: -item[1].count):
            examples = ", ".join(
                (f"{source} " if several_files else "")
                + f"row {number}"
                + ("" if value is None else f" {shown(value)}")
                for source, number, value in group.examples
            )
            noun = "row" if group.count == 1 else "rows"
            out.append(f"{where}: {group.count:,} {noun}: {kind} — {examples}")
        return out
