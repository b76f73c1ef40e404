"""What happens after a response: which statuses are retried, how long to wait.

``classify`` is the single table of status -> verdict; ``Backoff`` is capped exponential
backoff with full jitter; ``retry_after_seconds`` reads both forms of ``Retry-After``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from importer.errors import masked

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
ABORT_STATUSES = frozenset({401, 403})
MAX_DETAIL = 500


class Verdict(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    REJECT = "rejected"
    ABORT = "abort"


def classify(status: int) -> Verdict:
    """2xx is delivered; 408/429/5xx-transient are retried; 401/403 stop the run;
    everything else (other 4xx and 5xx, and 3xx since redirects are not followed) is
    a rejection of this row."""
    if 200 <= status < 300:
        return Verdict.SENT
    if status in RETRY_STATUSES:
        return Verdict.RETRY
    if status in ABORT_STATUSES:
        return Verdict.ABORT
    return Verdict.REJECT


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter: uniform(0, min(cap, base * 2**n))."""

    base: float = 0.5
    cap: float = 30.0
    rand: Callable[[float, float], float] = field(default=random.uniform)

    def __call__(self, attempt: int) -> float:
        return self.rand(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))


def parse_problem(body: bytes) -> tuple[str, str]:
    """(substatus, detail) from an RFC 7807 body; ``errors`` may be a list or a map."""
    try:
        doc: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return "", masked(text)[:MAX_DETAIL]
    if not isinstance(doc, dict):
        return "", ""
    parts = [str(doc[k]) for k in ("title", "detail") if doc.get(k)]
    errors = doc.get("errors")
    if isinstance(errors, dict):
        for key, msgs in errors.items():
            msgs = msgs if isinstance(msgs, list) else [msgs]
            parts.append(f"{key}: {'; '.join(map(str, msgs))}")
    elif isinstance(errors, list):
        parts.extend(map(str, errors))
    elif errors:
        parts.append(str(errors))
    substatus = doc.get("substatus")
    return ("" if substatus is None else str(substatus)), masked(" | ".join(parts))[:MAX_DETAIL]
