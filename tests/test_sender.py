"""The sender's decisions, with HTTP answered by aioresponses and sleeps injected."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aioresponses import aioresponses

from importer.pipeline import rate_limiter
from importer.retry import Backoff
from importer.sender import Job, Outcome, Sender, StopReason
from importer.transport import HttpTransport, Response

BASE = "http://127.0.0.1:9"
URL = re.compile(r"^http://127\.0\.0\.1:9/scenariocustomevents$")


@pytest.fixture(autouse=True)
def _aioresponses_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioresponses 0.7.x predates aiohttp 3.14's required ``stream_writer`` argument
    (pnuckowski/aioresponses#289); give its responses a finished writer."""
    if "stream_writer" not in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        return

    class CompatResponse(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(aioresponses_core, "ClientResponse", CompatResponse)


class Hooks:
    def __init__(self) -> None:
        self.started: list[tuple[int, int]] = []
        self.finished: dict[tuple[int, int], Outcome] = {}
        self.waiting: list[tuple[tuple[int, int], str]] = []  # rows told to wait out a backoff

    async def started_hook(self, job: Job) -> None:
        self.started.append(job.key)

    def finish(self, job: Job, outcome: Outcome) -> None:
        self.finished[job.key] = outcome


class _HookAdapter:
    def __init__(self, hooks: Hooks) -> None:
        self.h = hooks

    async def started(self, job: Job) -> None:
        await self.h.started_hook(job)

    def retrying(self, job: Job, outcome: Outcome) -> None:
        self.h.waiting.append((job.key, outcome.status))

    def finished(self, job: Job, outcome: Outcome) -> None:
        self.h.finish(job, outcome)


async def send(
    n: int, *, max_attempts: int = 3, concurrency: int = 2, breaker: int = 20
) -> tuple[Sender, Hooks, list[float]]:
    hooks = Hooks()
    sleeps: list[float] = []
    now = [0.0]

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    transport = HttpTransport(BASE, "k", 5, concurrency)
    sender = Sender(
        transport,
        "/scenariocustomevents",
        _HookAdapter(hooks),
        concurrency=concurrency,
        max_attempts=max_attempts,
        backoff=Backoff(0.5, 8.0, rand=lambda lo, hi: hi),
        sleep=fake_sleep,
        clock=lambda: now[0],
        breaker_threshold=breaker,
    )
    queue: asyncio.Queue[Job | None] = asyncio.Queue()
    for i in range(1, n + 1):
        queue.put_nowait(Job((1, i), b"{}", f"r{i}"))
    for _ in range(concurrency):
        queue.put_nowait(None)
    await sender.run(queue)
    await transport.close()
    return sender, hooks, sleeps


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(status: int) -> None:
    with aioresponses() as m:
        m.post(URL, status=status)
        m.post(URL, status=201)
        _sender, hooks, sleeps = await send(1)
    assert hooks.finished[(1, 1)] == Outcome("sent", 201)
    assert hooks.started == [(1, 1), (1, 1)]
    assert sleeps == [0.5]
    assert hooks.waiting == [((1, 1), "failed")]  # journaled as not on the wire while it waits


@pytest.mark.parametrize("status", [301, 400, 404, 409, 422, 501])
async def test_other_statuses_are_rejected_once(status: int) -> None:
    with aioresponses() as m:
        m.post(URL, status=status, body=b'{"title":"Nope","substatus":"X","errors":{"customerEmail":["bad"]}}')
        _sender, hooks, sleeps = await send(1)
    outcome = hooks.finished[(1, 1)]
    assert (outcome.status, outcome.http_status, outcome.substatus) == ("rejected", status, "X")
    assert "customerEmail: bad" in outcome.detail
    assert hooks.started == [(1, 1)] and sleeps == []


async def test_connection_errors_are_retried_then_fail() -> None:
    with aioresponses() as m:
        for _ in range(3):
            m.post(URL, exception=aiohttp.ServerDisconnectedError())
        sender, hooks, sleeps = await send(1, max_attempts=3)
    outcome = hooks.finished[(1, 1)]
    assert outcome.status == "failed" and outcome.detail.startswith("disconnected")
    assert len(hooks.started) == 3 and sleeps == [0.5, 1.0]
    # Three attempts are two retries: the row that runs out is not counted once more.
    assert sender.retries == 2 and sender.requests == 3 and len(hooks.waiting) == 2


async def test_timeouts_are_retried() -> None:
    with aioresponses() as m:
        m.post(URL, exception=TimeoutError())
        m.post(URL, status=201)
        _, hooks, _ = await send(1)
    assert hooks.finished[(1, 1)].status == "sent"


@pytest.mark.parametrize("header", ["7", "Thu, 01 Jan 2099 00:00:00 GMT"])
async def test_retry_after_is_honoured(header: str) -> None:
    with aioresponses() as m:
        m.post(URL, status=429, headers={"Retry-After": header})
        m.post(URL, status=201)
        _, hooks, sleeps = await send(1)
    assert hooks.finished[(1, 1)].status == "sent"
    assert sleeps == [7.0] if header == "7" else sleeps == [300.0]  # an HTTP date far ahead is capped


@pytest.mark.parametrize("status", [401, 403])
async def test_key_refused_stops_the_run(status: int) -> None:
    with aioresponses() as m:
        m.post(URL, status=status, repeat=True)
        sender, hooks, _ = await send(10, concurrency=1)
    assert sender.stop_reason is StopReason.AUTH
    assert list(hooks.finished) == [(1, 1)]
    assert hooks.finished[(1, 1)].status == "failed" and hooks.finished[(1, 1)].http_status == status
    assert len(hooks.started) == 1


async def test_breaker_trips_after_consecutive_failed_rows_not_attempts() -> None:
    with aioresponses() as m:
        # Every row's first attempt fails and its retry succeeds: a storm, not an outage.
        for _ in range(30):
            m.post(URL, status=503)
            m.post(URL, status=201)
        sender, hooks, _ = await send(30, concurrency=1, max_attempts=2, breaker=5)
    assert sender.stop_reason is None and len(hooks.finished) == 30
    with aioresponses() as m:
        m.post(URL, status=503, repeat=True)
        sender, hooks, _ = await send(30, concurrency=1, max_attempts=2, breaker=5)
    assert sender.stop_reason is StopReason.BREAKER
    assert len(hooks.finished) == 5 and all(o.status == "failed" for o in hooks.finished.values())


async def test_stop_interrupts_a_backoff_and_the_row_ends_failed() -> None:
    hooks = Hooks()
    transport = HttpTransport(BASE, "k", 5, 1)
    sender = Sender(
        transport,
        "/scenariocustomevents",
        _HookAdapter(hooks),
        concurrency=1,
        max_attempts=5,
        backoff=Backoff(100.0, 100.0, rand=lambda lo, hi: hi),
    )
    queue: asyncio.Queue[Job | None] = asyncio.Queue()
    for job in (Job((1, 1), b"{}", ""), Job((1, 2), b"{}", ""), None):
        queue.put_nowait(job)
    with aioresponses() as m:
        m.post(URL, status=503, repeat=True)
        task = asyncio.create_task(sender.run(queue))
        while not hooks.started:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        sender.stop(StopReason.SIGTERM)
        await asyncio.wait_for(task, 5)
    await transport.close()
    assert hooks.finished == {(1, 1): Outcome("failed", 503, "", "HTTP 503")}
    assert hooks.started == [(1, 1)]


async def test_stop_during_a_retry_after_pause_sends_nothing_more() -> None:
    hooks = Hooks()
    transport = HttpTransport(BASE, "k", 5, 2)
    sender = Sender(transport, "/scenariocustomevents", _HookAdapter(hooks), concurrency=2, max_attempts=3)
    queue: asyncio.Queue[Job | None] = asyncio.Queue()
    queue.put_nowait(Job((1, 1), b"{}", ""))
    with aioresponses() as m:
        m.post(URL, status=429, headers={"Retry-After": "100"})  # pauses every request for 100 s
        m.post(URL, status=201, repeat=True)
        task = asyncio.create_task(sender.run(queue))
        while not hooks.started:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        for job in (Job((1, 2), b"{}", ""), None, None):  # row 2 meets the pause on its first try
            queue.put_nowait(job)
        await asyncio.sleep(0.05)
        sender.stop(StopReason.SIGTERM)
        await asyncio.wait_for(task, 5)
    await transport.close()
    assert hooks.started == [(1, 1)]
    assert hooks.finished == {(1, 1): Outcome("failed", 429, "", "HTTP 429")}


class ScriptedTransport:
    """A fake transport: answers from a script (then 201), recording when each request started."""

    def __init__(self, script: list[Response]) -> None:
        self.script = script
        self.starts: list[float] = []

    async def post(self, path: str, body: bytes) -> Response:
        self.starts.append(time.monotonic())
        await asyncio.sleep(0.001)
        return self.script.pop(0) if self.script else Response(201, b"")

    async def close(self) -> None:
        pass


async def test_the_rate_limit_holds_in_every_window_across_a_retry_after_pause() -> None:
    """Rows held by a Retry-After pause must not bank rate-limit slots and then all start
    together when the pause ends (issue 9: 11 starts in one second at --rate-limit 2)."""
    transport = ScriptedTransport([Response(429, b"", "2.5")])  # a pause longer than the window
    hooks = Hooks()
    sender = Sender(transport, "/p", _HookAdapter(hooks), concurrency=64, limiter=rate_limiter(20))
    queue: asyncio.Queue[Job | None] = asyncio.Queue()
    for i in range(1, 71):
        queue.put_nowait(Job((1, i), b"{}", f"r{i}"))
    for _ in range(64):
        queue.put_nowait(None)
    await sender.run(queue)
    assert len(hooks.finished) == 70 and all(o.status == "sent" for o in hooks.finished.values())
    starts = transport.starts
    worst = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert worst <= 20, worst


async def test_a_stop_ends_a_wait_for_the_rate_limiter_at_once() -> None:
    transport = ScriptedTransport([])
    sender = Sender(transport, "/p", _HookAdapter(Hooks()), concurrency=4, limiter=rate_limiter(0.02))
    queue: asyncio.Queue[Job | None] = asyncio.Queue()
    for i in range(1, 5):
        queue.put_nowait(Job((1, i), b"{}", f"r{i}"))
    for _ in range(4):
        queue.put_nowait(None)
    running = asyncio.create_task(sender.run(queue))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    sender.stop(StopReason.SIGTERM)
    await asyncio.wait_for(running, 2)
    assert time.monotonic() - started < 0.5 and len(transport.starts) == 1
