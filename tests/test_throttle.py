from __future__ import annotations

import asyncio

from importer.throttle import AdaptiveGate, WindowLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_window_limiter_never_admits_more_than_rate_per_window() -> None:
    t = FakeTime()
    starts: list[float] = []
    limiter = WindowLimiter(5, clock=t.clock, sleep=t.sleep)
    for _ in range(23):
        await limiter.acquire()
        starts.append(t.now)
        t.now += 0.01
    for i, start in enumerate(starts):
        assert sum(1 for s in starts[i:] if s < start + 1.0) <= 5
    assert starts[-1] >= 4.0  # 23 starts at 5 per second need more than 4 s


async def test_gate_halves_on_429_once_per_cooldown_and_grows_back() -> None:
    t = FakeTime()
    gate = AdaptiveGate(16, clock=t.clock, sleep=t.sleep)
    gate.throttled(429, None)
    gate.throttled(429, None)  # the same burst: no second cut
    assert (gate.limit, gate.decreases) == (8, 1)
    t.now += 1.5
    gate.throttled(429, None)
    assert (gate.limit, gate.decreases) == (4, 2)
    for _ in range(4):  # a run of successes as long as the limit adds one
        gate.success()
    assert gate.limit == 5
    for _ in range(200):
        gate.success()
    assert gate.limit == 16  # never beyond --concurrency


async def test_gate_cuts_on_a_burst_of_503_not_on_one() -> None:
    t = FakeTime()
    gate = AdaptiveGate(8, clock=t.clock, sleep=t.sleep)
    gate.throttled(503, None)
    gate.throttled(500, None)
    assert gate.limit == 8
    gate.throttled(503, None)
    gate.throttled(503, None)
    assert gate.limit == 4


async def test_gate_bounds_requests_in_flight_and_wakes_waiters() -> None:
    gate = AdaptiveGate(4)
    gate.throttled(429, None)  # limit 2
    for _ in range(2):
        await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert not waiter.done() and gate.in_use == 2
    gate.release()
    await asyncio.wait_for(waiter, 1)
    assert gate.in_use == 2


async def test_retry_after_pauses_every_request() -> None:
    t = FakeTime()
    gate = AdaptiveGate(4, clock=t.clock, sleep=t.sleep)
    gate.throttled(429, 7.0)
    await gate.acquire()
    assert t.slept == [7.0]


def test_fractional_rate_limits_round_down_never_up() -> None:
    from importer.pipeline import rate_limiter

    assert (rate_limiter(20).rate, rate_limiter(20).window) == (20, 1.02)
    assert rate_limiter(2.5).rate == 2
    slow = rate_limiter(0.5)
    assert (slow.rate, slow.window) == (1, 2.04)


async def test_503s_hours_apart_are_no_burst() -> None:
    t = FakeTime()
    gate = AdaptiveGate(8, clock=t.clock, sleep=t.sleep)
    for _ in range(6):
        gate.throttled(503, None)
        t.now += 3600
    assert gate.limit == 8 and gate.decreases == 0
    for _ in range(3):
        gate.throttled(503, None)
        t.now += 2
    assert gate.limit == 4 and gate.decreases == 1
