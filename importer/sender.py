"""Bounded-concurrency sending: a fixed pool of workers, retries, rate limit, breaker.

The sender owns no I/O of its own: it gets a transport, hooks that journal each row
(``started`` is awaited until the in-flight mark is durable, before the request leaves),
and a sleep function, so tests drive it without a network or a clock.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from importer.errors import JournalFault, TransportError
from importer.retry import Backoff, Verdict, classify, parse_problem, retry_after_seconds
from importer.throttle import AdaptiveGate, WindowLimiter
from importer.transport import Transport

BREAKER_THRESHOLD = 20
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True, slots=True)
class Job:
    """One row ready to send: its journal key, its encoded body, its report ref, and its
    event identity for the delivery ledger (None with dedup off)."""

    key: tuple[int, int]
    body: bytes
    ref: str
    identity: bytes | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A row's result in this run: ``sent``, ``rejected`` or ``failed``."""

    status: str
    http_status: int | None = None
    substatus: str = ""
    detail: str = ""


class StopReason(enum.Enum):
    AUTH = "auth"
    BREAKER = "breaker"
    SIGINT = "sigint"
    SIGTERM = "sigterm"
    INPUT = "input"  # an input changed while it was read
    STATE = "state"  # the journal cannot record any more (disk full, deleted)
    GUARD = "guard"  # --max-rejected or --canary
    TLS = "tls"  # the API's certificate is not trusted: retrying cannot help
    CALLER = "caller"  # StopToken.stop() from the library's caller
    INTERNAL = "internal"  # an unexpected exception (a bug): the run raises it after the drain


class StopToken:
    """Stops a run from anywhere (another thread, a signal handler, a caller's code) with
    the drain semantics of SIGTERM: no new request leaves, those on the wire finish."""

    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender: Sender | None = None

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def stop(self, reason: StopReason | None = None) -> None:
        """Ask the run to stop; safe from any thread. The first reason given wins."""
        if self.reason is None:
            self.reason = reason or StopReason.CALLER
        loop, sender = self._loop, self._sender
        if loop is not None and sender is not None and not loop.is_closed():
            loop.call_soon_threadsafe(sender.stop, self.reason)

    def attach(self, sender: Sender) -> None:
        """Route stops to ``sender`` (on the running loop); a stop asked already applies."""
        self._loop, self._sender = asyncio.get_running_loop(), sender
        if self.reason is not None:
            sender.stop(self.reason)


class Hooks(Protocol):
    async def started(self, job: Job) -> None: ...

    def retrying(self, job: Job, outcome: Outcome) -> None: ...

    def finished(self, job: Job, outcome: Outcome) -> None: ...


class _Retryable(Exception):
    def __init__(self, outcome: Outcome, retry_after: float | None) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome
        self.retry_after = retry_after


class _Interrupted(Exception):
    """The run is stopping while a row waits (backoff, pause, rate limit): no request
    leaves after a stop."""


class Sender:
    """Sends jobs from a queue with ``concurrency`` workers until it gets one ``None``
    per worker, or until ``stop`` is called (remaining jobs are left not attempted).

    Workers outlive any exception of their own: each keeps taking jobs until its ``None``,
    so the producer is never left waiting on a full queue nobody reads.
    """

    def __init__(
        self,
        transport: Transport,
        path: str,
        hooks: Hooks,
        *,
        concurrency: int = 8,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        limiter: WindowLimiter | None = None,
        gate: AdaptiveGate | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        breaker_threshold: int = BREAKER_THRESHOLD,
    ) -> None:
        self.transport = transport
        self.path = path
        self.hooks = hooks
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.limiter = limiter
        # The gate's pauses (Retry-After) end early when the run stops.
        self.gate = gate or AdaptiveGate(concurrency, clock=clock, sleep=self._sleep)
        self.breaker_threshold = breaker_threshold
        self.stop_reason: StopReason | None = None
        self.requests = 0
        self.retries = 0
        self._sleep_fn = sleep
        self._stop = asyncio.Event()
        self._consecutive_failed = 0
        self.outcomes: dict[str, int] = {}
        self.error: Exception | None = None  # the first unexpected exception, raised by run()

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: StopReason) -> None:
        """Stop taking new rows; the first reason given wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stop.set()

    def fail(self, error: Exception) -> None:
        """A bug (ours or a library's) anywhere in the run: stop as a signal would, so the
        requests on the wire finish and are recorded, and have ``run`` raise ``error``."""
        if self.error is None:
            self.error = error
        self.stop(StopReason.INTERNAL)

    async def run(self, queue: asyncio.Queue[Job | None]) -> None:
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.concurrency)]
        await asyncio.gather(*workers)
        if self.error is not None:
            raise self.error

    async def _worker(self, queue: asyncio.Queue[Job | None]) -> None:
        while (job := await queue.get()) is not None:
            if self.stopped:
                continue
            try:
                outcome = await self.deliver(job)
                if outcome is None:
                    continue
                self.hooks.finished(job, outcome)
            except Exception as exc:
                # The row stays in flight in the journal (reported unknown: its request
                # may have left), never sent; this worker lives on to drain the queue.
                self.fail(exc)
                continue
            self.outcomes[outcome.status] = self.outcomes.get(outcome.status, 0) + 1
            self._watch_breaker(outcome)

    def _watch_breaker(self, outcome: Outcome) -> None:
        if outcome.status != "failed":
            self._consecutive_failed = 0
        elif not self.stopped:
            self._consecutive_failed += 1
            if self._consecutive_failed >= self.breaker_threshold:
                self.stop(StopReason.BREAKER)

    async def deliver(self, job: Job) -> Outcome | None:
        """Send one row with retries; ``None`` if the run stopped before its first try.

        The first attempt runs outside tenacity: most rows succeed at once, and building
        a retry loop per row would cost more than the rest of the row's work.
        """
        try:
            return await self._attempt(job)
        except _Interrupted:
            return None  # stopped while waiting for the rate limit or a pause: never sent
        except _Retryable as exc:
            if self.max_attempts == 1 or self.stopped:
                return exc.outcome
            first = exc
        last = first.outcome
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts - 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=lambda state: self._waiting(job, state.outcome.exception() if state.outcome else None),
            reraise=True,
        )
        try:
            self._waiting(job, first)
            await self._sleep(self._delay(1, first))
            async for attempt in retrying:
                with attempt:
                    if self.stopped:
                        break
                    try:
                        return await self._attempt(job)
                    except _Retryable as exc:
                        last = exc.outcome
                        raise
        except (_Retryable, _Interrupted):
            pass
        return last

    def _waiting(self, job: Job, exc: BaseException | None) -> None:
        """A retry will follow: count it, and let the journal know the row is not on the
        wire while it waits (a crash now leaves it ``failed``, to be sent again)."""
        self.retries += 1
        if isinstance(exc, _Retryable):
            self.hooks.retrying(job, exc.outcome)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        # Attempt n of the retry loop is attempt n + 1 of the row.
        return self._delay(state.attempt_number + 1, exc)

    def _delay(self, attempt: int, exc: BaseException | None) -> float:
        """The wait after ``attempt`` failed: its Retry-After, else the backoff."""
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return self.backoff(attempt)

    async def _sleep(self, seconds: float) -> None:
        if self.stopped:
            raise _Interrupted
        nap = asyncio.ensure_future(self._sleep_fn(seconds))
        halt = asyncio.ensure_future(self._stop.wait())
        _, pending = await asyncio.wait({nap, halt}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if self.stopped:
            raise _Interrupted

    async def _attempt(self, job: Job) -> Outcome:
        # The gate first: a row held by a Retry-After pause must not take a rate-limit
        # slot it would use only after the pause, together with every other held row.
        await self.gate.acquire()
        try:
            if self.limiter is not None:
                await self.limiter.acquire(self._sleep)
            if self.stopped:
                raise _Interrupted
            try:
                await self.hooks.started(job)
            except JournalFault:
                raise _Interrupted from None  # not recorded as in flight: it must not leave
            self.requests += 1
            resp = await self.transport.post(self.path, job.body)
        except TransportError as exc:
            if exc.fatal:
                self.stop(StopReason.TLS)
                return Outcome("failed", None, "", f"{exc.kind}: {exc}")
            raise _Retryable(Outcome("failed", None, "", f"{exc.kind}: {exc}"), None) from exc
        finally:
            self.gate.release()
        verdict = classify(resp.status)
        if verdict is Verdict.SENT:
            self.gate.success()
            return Outcome("sent", resp.status)
        substatus, detail = parse_problem(resp.body)
        detail = detail or f"HTTP {resp.status}"
        if verdict is Verdict.RETRY:
            retry_after = retry_after_seconds(resp.retry_after)
            retry_after = None if retry_after is None else min(retry_after, MAX_RETRY_AFTER)
            self.gate.throttled(resp.status, retry_after)
            raise _Retryable(Outcome("failed", resp.status, substatus, detail), retry_after)
        if verdict is Verdict.ABORT:
            self.stop(StopReason.AUTH)
            return Outcome("failed", resp.status, substatus, f"API refused the key: {detail}")
        return Outcome("rejected", resp.status, substatus, detail)
