"""The delivery ledger: which event was already sent from this state directory, by any
import, so that overlapping nightly drops and re-exports send each event once.

An event's identity is, by default, a digest of the request as it would be sent (the
endpoint and the body bytes): two rows that would send the same body are the same event,
whatever the file, the column order, the quoting or the row order. A mapping may name it
instead (``dedup: {key: [order_id, line_no]}``: those columns' values, the endpoint and the
event id) or turn it off (``dedup: none``). The storage lives in the journal (its
``ledger`` table, written in the same transaction as the row's in-flight mark).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from importer.convert import to_text

Identity = bytes
DIGEST_BYTES = 16  # 128 bits: no two events collide in any state directory's lifetime


def body_identity(endpoint: str, body: bytes) -> Identity:
    return hashlib.blake2b(endpoint.encode() + b"\n" + body, digest_size=DIGEST_BYTES).digest()


def key_identity(endpoint: str, event_id: Any, values: list[Any]) -> Identity | None:
    """The identity named by the dedup key's values, or None when one of them is blank:
    a blank names no event (three customers' rows with an empty ``order_id`` are three
    events), so such a row is identified by its body instead."""
    texts = ["" if v is None else to_text(v).strip() for v in values]
    if not all(texts):
        return None
    parts = [endpoint, str(event_id), *texts]
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


def identity_function(
    endpoint: str, dedup: bool, key: tuple[str, ...] | None
) -> Callable[[dict[str, Any], dict[str, Any], bytes], Identity] | None:
    """``f(row values, body, body bytes) -> identity`` for a mapping, or None with dedup off."""
    if not dedup:
        return None
    if key:
        columns = list(key)

        def keyed(values: dict[str, Any], body: dict[str, Any], raw: bytes) -> Identity:
            named = key_identity(endpoint, body.get("customEventId"), [values.get(c) for c in columns])
            return named if named is not None else body_identity(endpoint, raw)

        return keyed
    return lambda _values, _body, raw: body_identity(endpoint, raw)
