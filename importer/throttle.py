"""How fast the sender may go: a hard rate limit and an adaptive concurrency gate.

``WindowLimiter`` keeps ``--rate-limit``: at most R request starts in any window.
``AdaptiveGate`` is AIMD over the number of requests in flight: a 429 (or a burst of
three 503s within ten seconds) halves it, each run of successes as long as the current limit adds one, up to
``--concurrency``; a ``Retry-After`` pauses every request, not only the one that got it.
Both take their clock and sleep, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class WindowLimiter:
    """At most ``rate`` acquisitions in any window of ``window`` seconds (sliding log).

    A token bucket admits a burst at a window's edge that a sliding window of one second
    would count twice; the log of the last ``rate`` start times cannot.
    """

    def __init__(
        self, rate: int, window: float = 1.0, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.rate = rate
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()

    async def acquire(self, sleep: Sleep | None = None) -> None:
        """Wait for a start; ``sleep`` (the sender's) ends the wait early when a run stops."""
        nap = sleep or self._sleep
        while True:
            now = self._clock()
            while self._starts and now - self._starts[0] >= self.window:
                self._starts.popleft()
            if len(self._starts) < self.rate:
                self._starts.append(now)
                return
            # At least 1 ms: float rounding must not leave us sleeping 1e-16 s forever.
            await nap(max(self._starts[0] + self.window - now, 0.001))


class AdaptiveGate:
    """An adjustable limit on requests in flight (additive increase, multiplicative decrease)."""

    BURST_503 = 3  # 503s within BURST_WINDOW seconds that count as a burst
    BURST_WINDOW = 10.0

    def __init__(
        self, ceiling: int, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, cooldown: float = 1.0
    ) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.in_use = 0
        self.decreases = 0
        self._clock = clock
        self._sleep = sleep
        self._cooldown = cooldown
        self._last_cut = float("-inf")
        self._streak = 0
        self._recent_503: deque[float] = deque()
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while True:
            pause = self._paused_until - self._clock()
            if pause > 0:
                await self._sleep(pause)
                continue
            if self.in_use < self.limit:
                self.in_use += 1
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_use
        while self._waiters and free > 0:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def success(self) -> None:
        self._streak += 1
        if self._streak >= self.limit and self.limit < self.ceiling:
            self.limit += 1
            self._streak = 0
            self._wake()

    def throttled(self, status: int, retry_after: float | None) -> None:
        """A 429 cuts at once; 503s cut when they come in a burst. One cut per cooldown,
        so a burst of answers to requests that were in flight together counts once."""
        now = self._clock()
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        if status == 503:
            self._recent_503.append(now)
            while now - self._recent_503[0] > self.BURST_WINDOW:
                self._recent_503.popleft()
            if len(self._recent_503) < self.BURST_503:
                return
        elif status != 429:
            return
        self._streak = 0
        if now - self._last_cut >= self._cooldown:
            self._last_cut = now
            self._recent_503.clear()
            self.limit = max(1, self.limit // 2)
            self.decreases += 1
