"""A strict local stand-in for the two ECDP endpoints, with faults on demand.

It checks ``x-api-key`` and every body per the API reference (types, lengths, hex
hashes, wire formats, at least one identifier), answers 201/400/401/404 with
problem+json, can inject latency, 429s with ``Retry-After``, 5xx and dropped
connections, and can record every accepted request as a JSON line. ``GET /_mock/stats``
returns counters, including the most requests it ever had in flight at once.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

import orjson
from aiohttp import web

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
FIELD_FORMATS = {
    "String": None,
    "Text": None,
    "Number": re.compile(r"-?\d+(\.\d+)?"),
    "Money": re.compile(r"-?\d+\.\d{2}"),
    "Date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "DateTime": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"),
    "Boolean": re.compile(r"true|false"),
    "URL": re.compile(r"https?://[^\s/?#]+\S*"),
}
STRING_IDS = {
    "customerEmail": (320, re.compile(r"[^@\s]+@[^@\s]+")),
    "customerEmailMd5": (32, re.compile(r"[0-9a-f]{32}")),
    "customerEmailSha256": (64, re.compile(r"[0-9a-f]{64}")),
    "customerPhone": (20, re.compile(r"\+[1-9]\d{5,14}")),
    "customerCrmId": (128, re.compile(r".+", re.S)),
}
CUSTOMER_KEYS = {"customEventId", "customerId", *STRING_IDS, "dataFields"}
SEGMENT_KEYS = {"customEventId", "segments", "dataFields"}


@dataclass
class MockOptions:
    api_key: str = "mock-key"
    latency_ms: float = 0.0
    fail_429: float = 0.0
    retry_after: str = "1"
    fail_5xx: float = 0.0
    drop: float = 0.0
    fail_after: int | None = None
    reject_containing: str | None = None  # answer 400 to a valid body holding this text
    events: frozenset[int] | None = None
    segments: frozenset[int] | None = None
    record: str | None = None
    seed: int | None = None


@dataclass
class MockState:
    requests: int = 0
    accepted: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def problem(status: int, title: str, detail: str, errors: Any = None) -> web.Response:
    doc: dict[str, Any] = {
        "type": f"https://httpstatuses.io/{status}",
        "title": title,
        "status": status,
        "substatus": "CustomerInvalidModelState" if status == 400 else title.replace(" ", ""),
        "detail": detail,
        "instance": "/mock",
    }
    if errors is not None:
        doc["errors"] = errors
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/problem+json")


def check_body(path: str, doc: Any) -> list[str]:
    """Every reason the API would answer 400 to this body (empty when valid)."""
    if not isinstance(doc, dict):
        return ["body must be a JSON object"]
    segments = path.endswith("/withsegments")
    errors = [f"unknown field {k}" for k in doc if k not in (SEGMENT_KEYS if segments else CUSTOMER_KEYS)]
    event = doc.get("customEventId")
    if isinstance(event, bool) or not isinstance(event, int) or not 0 < event <= INT32_MAX:
        errors.append("customEventId must be a positive int32")
    if segments:
        segs = doc.get("segments")
        if not isinstance(segs, list) or not segs:
            errors.append("segments must be a non-empty array")
        elif any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= INT32_MAX for s in segs):
            errors.append("segments must hold int32 ids")
    else:
        errors.extend(_check_customer(doc))
    errors.extend(_check_fields(doc.get("dataFields", [])))
    return errors


def _check_customer(doc: dict[str, Any]) -> list[str]:
    errors = []
    present = [k for k in ("customerId", *STRING_IDS) if doc.get(k) not in (None, "")]
    if not present:
        errors.append("At least one customer identifier is required")
    cid = doc.get("customerId")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= INT64_MAX):
        errors.append("customerId must be an integer")
    for key, (limit, pattern) in STRING_IDS.items():
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit or not pattern.fullmatch(value):
            errors.append(f"{key} is not valid")
    return errors


def _check_fields(fields: Any) -> list[str]:
    if not isinstance(fields, list):
        return ["dataFields must be an array"]
    errors = []
    for i, item in enumerate(fields):
        if not isinstance(item, dict) or set(item) != {"name", "type", "value"}:
            errors.append(f"dataFields[{i}] must be {{name, type, value}}")
            continue
        name, ftype, value = item["name"], item["type"], item["value"]
        if not all(isinstance(x, str) for x in (name, ftype, value)) or not name:
            errors.append(f"dataFields[{i}]: name, type and value must be strings")
        elif ftype not in FIELD_FORMATS:
            errors.append(f"dataFields[{i}]: unknown type {ftype}")
        elif not _value_ok(ftype, value):
            errors.append(f"dataFields[{i}] ({name}): {value!r} is not a valid {ftype}")
    return errors


def _value_ok(ftype: str, value: str) -> bool:
    pattern = FIELD_FORMATS[ftype]
    if pattern is None:
        return True
    if not pattern.fullmatch(value):
        return False
    if ftype in ("Date", "DateTime"):
        try:
            date.fromisoformat(value[:10])
        except ValueError:
            return False
    return True


class MockServer:
    """The aiohttp application and its counters."""

    def __init__(self, options: MockOptions) -> None:
        self.options = options
        self.state = MockState()
        self.rng = random.Random(options.seed)
        self._record: IO[bytes] | None = open(options.record, "ab") if options.record else None  # noqa: SIM115
        self.app = web.Application()
        self.app.router.add_post("/scenariocustomevents", self.handle)
        self.app.router.add_post("/scenariocustomevents/withsegments", self.handle)
        self.app.router.add_get("/_mock/stats", self.stats)
        self.app.on_cleanup.append(self._close)

    async def _close(self, _: web.Application) -> None:
        if self._record:
            self._record.close()

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.state.__dict__)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.requests += 1
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            response = await self._answer(request)
        finally:
            state.in_flight -= 1
        key = str(response.status)
        state.by_status[key] = state.by_status.get(key, 0) + 1
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        opts = self.options
        body = await request.read()
        if opts.latency_ms:
            await asyncio.sleep(opts.latency_ms / 1000)
        if request.headers.get("x-api-key") != opts.api_key:
            return problem(401, "Unauthorized", "Missing or invalid API key")
        if opts.drop and self.rng.random() < opts.drop:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # the connection is gone; nothing to answer
        if opts.fail_after is not None and self.state.accepted >= opts.fail_after:
            return problem(503, "Service Unavailable", "mock outage")
        if opts.fail_429 and self.rng.random() < opts.fail_429:
            resp = problem(429, "Too Many Requests", "mock throttling")
            resp.headers["Retry-After"] = opts.retry_after
            return resp
        if opts.fail_5xx and self.rng.random() < opts.fail_5xx:
            return problem(self.rng.choice((500, 502, 503, 504)), "Server Error", "mock fault")
        return self._accept(request.path, body)

    def _accept(self, path: str, body: bytes) -> web.Response:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return problem(400, "One or more validation errors occurred.", "body is not JSON", ["body is not JSON"])
        errors = check_body(path, doc)
        marker = self.options.reject_containing
        if not errors and marker and marker.encode() in body:
            errors = [f"mock rule: the body contains {marker!r}"]
        if errors:
            return problem(400, "One or more validation errors occurred.", errors[0], errors)
        opts = self.options
        if opts.events is not None and doc["customEventId"] not in opts.events:
            return problem(404, "Not Found", f"custom event {doc['customEventId']} does not exist")
        if opts.segments is not None and "segments" in doc:
            unknown = [s for s in doc["segments"] if s not in opts.segments]
            if unknown:
                return problem(404, "Not Found", f"segment {unknown[0]} does not exist")
        self.state.accepted += 1
        if self._record:
            self._record.write(orjson.dumps({"path": path, "body": doc, "at": time.time()}) + b"\n")
            self._record.flush()
        return web.Response(status=201)


async def serve(
    options: MockOptions, host: str, port: int, announce: Callable[[str], None], tls: tuple[str, str] | None = None
) -> None:
    """Run until cancelled, printing the URL it listens on (port 0 picks a free one).
    ``tls`` (certificate and key files) serves https, for rehearsing a corporate CA."""
    server = MockServer(options)
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    context = None
    if tls:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    bound = port
    for sock in getattr(site._server, "sockets", None) or []:
        bound = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    announce(f"{'https' if tls else 'http'}://{shown_host}:{bound}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def spawn(*args: str, cwd: str | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start ``ecdp-import mock-server --port 0 ARGS`` as a process; return it and its URL.

    For tests, benchmarks and the demo, which all want a real server on loopback.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", "mock-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"mock server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()
