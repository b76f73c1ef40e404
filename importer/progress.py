"""Where a long run stands: rows done of total, rows/s, ETA and counts per status.

On a terminal it redraws one bar line; elsewhere (cron, Airflow logs) it writes one plain
line per interval. Updating is a counter increment, so it costs the run nothing.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any, TextIO

SHOWN = ("sent", "duplicate", "invalid", "rejected", "failed", "done_before")


def duration(seconds: float) -> str:
    """``16 h 40 min``, ``3 min 5 s``, ``12 s``."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


class Progress:
    """Counts rows as the pipeline finishes them and reports them every ``interval``."""

    def __init__(self, stream: TextIO, tty: bool, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = tty
        self.interval = interval
        # Rows in all inputs and whether that is exact (CSV counts are estimated until read).
        self.total: Callable[[], tuple[int, bool]] | None = None
        self.counts: dict[str, int] = {}
        self.done = 0
        # The sender's retries and throttling so far: a 429 storm must show while it slows the run.
        self.activity: Callable[[], tuple[int, int]] | None = None
        self._clock = clock
        self._started = clock()

    @classmethod
    def calling(cls, callback: Callable[[dict[str, Any]], None], interval: float = 5.0) -> Progress:
        """For the library: ``callback`` gets ``{"done", "total", "exact", "counts"}`` every
        ``interval`` seconds and once at the end, instead of lines on a stream."""
        progress = cls(io.StringIO(), False, interval)  # the stream stays unused
        progress.callback = callback
        return progress

    callback: Callable[[dict[str, Any]], None] | None = None

    def snapshot(self) -> dict[str, Any]:
        total, exact = self.total() if self.total else (0, True)
        return {"done": self.done, "total": total, "exact": exact, "counts": dict(self.counts)}

    def add(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        self.done += 1

    def line(self) -> str:
        elapsed = max(self._clock() - self._started, 1e-9)
        worked = self.done - self.counts.get("done_before", 0)
        rate = worked / elapsed
        total, exact = self.total() if self.total else (0, True)
        parts = []
        if total:
            pct = min(100.0, 100.0 * self.done / total)
            approx = "" if exact else "~"
            parts.append(f"{self.done:,}/{approx}{total:,} rows ({pct:.0f}%)")
        else:
            parts.append(f"{self.done:,} rows")
        parts.append(f"{rate:,.0f} rows/s")
        if total and rate > 0 and total > self.done:
            parts.append(f"ETA {duration((total - self.done) / rate)}")
        counts = ", ".join(f"{s} {self.counts[s]:,}" for s in SHOWN if self.counts.get(s))
        if counts:
            parts.append(counts)
        retries, throttled = self.activity() if self.activity else (0, 0)
        if retries or throttled:
            parts.append(f"retries {retries:,}, throttled {throttled:,}x")
        return " · ".join(parts) if self.tty else "progress: " + ", ".join(parts)

    def emit(self) -> None:
        if self.callback is not None:
            self.callback(self.snapshot())
            return
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    async def run(self) -> None:
        """Report every ``interval`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.emit()

    def close(self) -> None:
        if self.callback is not None:
            self.emit()
            return
        if self.tty:
            self.emit()
            self.stream.write("\n")
            self.stream.flush()
