"""What makes two runs "the same import": the content read, the rules it was read by
(the parsed mapping) and where it was sent (the target). One function each, so that
everything deciding "already done" (the journal's import lookup, the delivery ledger,
finished bucket objects) agrees.

- The mapping's fingerprint is taken over the *compiled* mapping, not its text: comments,
  key order, quoting and YAML spelling do not change it; any change to what is sent,
  filtered or deduplicated does. The file's path is not part of it (a moved file is the
  same mapping), but it is recorded beside it, with the event the mapping starts: an edit
  of one mapping file for the same event continues its imports (a fixed date format
  re-validates the invalid rows; nothing sent is sent again), where a second mapping file,
  or another event, over the same export is an import of its own.
- The target is the base URL and a one-way fingerprint of the API key (never the key):
  a rehearsal against the mock or a staging business unit is another target than
  production, and its sends hold nothing back there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

if TYPE_CHECKING:
    from importer.mapping import Mapping

_KEY_SALT = b"ecdp-import api key fingerprint v1\0"


@dataclass(frozen=True, slots=True)
class Target:
    """Where rows go: the API root and the key's fingerprint (hex, 16 digits)."""

    base_url: str
    key_fingerprint: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.base_url}\0{self.key_fingerprint}".encode()).hexdigest()[:32]

    def describe(self) -> str:
        """``https://api.ecdp.app (key 1a2b3c4d)``: a person can tell two keys apart; the key
        cannot be found from it."""
        return f"{self.base_url} (key {self.key_fingerprint[:8]})"


@dataclass(frozen=True, slots=True)
class Scope:
    """The rules and the target of one run: every import it resolves is under them."""

    mapping_fingerprint: str
    mapping_path: str
    mapping_event: str  # the endpoint and event id (or its column): which event the rows start
    target: Target


def target_of(base_url: str, api_key: str) -> Target:
    """The target for a base URL and a key. The URL is taken in one spelling per API:
    scheme and host in lower case, no default port, no trailing slash (``HTTPS://API.ecdp.app:443/``
    is ``https://api.ecdp.app``); a user or password in it is never kept."""
    digest = hashlib.sha256(_KEY_SALT + api_key.encode("utf-8", "surrogatepass")).hexdigest()
    return Target(normal_url(base_url), digest[:16])


def normal_url(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        host += f":{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))


def target_entry(target: Target) -> dict[str, str]:
    """The target as the summary JSON and ``status --json`` show it."""
    return {"base_url": target.base_url, "key_fingerprint": target.key_fingerprint[:8]}


def mapping_fingerprint(mapping: Mapping) -> str:
    """A digest of what the compiled mapping does, independent of its file's spelling."""
    doc = _canonical(dataclasses.replace(mapping, source=""))
    return hashlib.sha256(orjson.dumps(doc)).hexdigest()[:32]


def scope_of(mapping: Mapping, base_url: str, api_key: str) -> Scope:
    path = mapping.source if mapping.source == "mapping" else os.path.realpath(mapping.source)
    event = (
        f"{mapping.endpoint}:{mapping.event_id if mapping.event_id_column is None else '@' + mapping.event_id_column}"
    )
    return Scope(mapping_fingerprint(mapping), path, event, target_of(base_url, api_key))


def import_identity(content: str, scope: Scope) -> str:
    """The journal's key of an import: content + mapping + target."""
    parts = f"import v2\0{content}\0{scope.mapping_fingerprint}\0{scope.target.fingerprint}"
    return hashlib.sha256(parts.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """A JSON-able form of a compiled mapping with one spelling per meaning (sets sorted:
    their iteration order changes from one process to the next)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"@": type(value).__name__, **fields}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"set": sorted((_canonical(v) for v in value), key=lambda v: orjson.dumps(v))}
    if isinstance(value, dict):
        return {"dict": sorted(([str(k), _canonical(v)] for k, v in value.items()), key=lambda kv: kv[0])}
    if isinstance(value, (datetime, date)):
        return {"time": value.isoformat(), "tz": _canonical(getattr(value, "tzinfo", None))}
    if isinstance(value, tzinfo):
        return {"tz": getattr(value, "key", None) or str(value)}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"repr": type(value).__name__ + ":" + repr(value)}


# For journal users that resolve no import (status, prune): never matches a real target.
UNSCOPED = Scope("", "", "", Target("", ""))
