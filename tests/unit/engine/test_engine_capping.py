from __future__ import annotations

import asyncio

import pytest

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine.capping import (
    SERVER_ARRIVAL_MARGIN_SECONDS,
    InMemorySlidingWindowLimiter,
    limiter_for,
)


class VirtualTime:
    """A clock that only moves when a limiter sleeps, by exactly the requested delay."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        await asyncio.sleep(0)


class ManualTime:
    """A clock moved by the test; sleepers wake only when the test calls ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeping = 0
        self._tick = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeping += 1
        try:
            await self._tick.wait()
        finally:
            self.sleeping -= 1

    def advance(self, seconds: float) -> None:
        self.now += seconds
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()


def max_in_any_window(times: list[float], period: float) -> int:
    """Return the largest number of times inside any half-open window [t, t + period)."""
    ordered = sorted(times)
    return max(sum(1 for other in ordered if start <= other < start + period) for start in ordered)


async def acquire_in_order(
    limiter: InMemorySlidingWindowLimiter, clock: VirtualTime, count: int
) -> list[tuple[int, float]]:
    grants: list[tuple[int, float]] = []

    async def one(index: int) -> None:
        await limiter.acquire()
        grants.append((index, clock.clock()))

    tasks = []
    for index in range(count):
        tasks.append(asyncio.create_task(one(index)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return grants


def test_limiter_never_exceeds_calls_in_window() -> None:
    clock = VirtualTime()
    limiter = InMemorySlidingWindowLimiter(3, 1.0, "throttle", clock.clock, sleep=clock.sleep)

    grants = asyncio.run(acquire_in_order(limiter, clock, 10))

    assert max_in_any_window([at for _, at in grants], 1.0) == 3


def test_limiter_grants_waiters_first_in_first_out() -> None:
    clock = VirtualTime()
    limiter = InMemorySlidingWindowLimiter(3, 1.0, "throttle", clock.clock, sleep=clock.sleep)

    grants = asyncio.run(acquire_in_order(limiter, clock, 10))

    assert [index for index, _ in grants] == list(range(10))


def test_limiter_grants_as_soon_as_slot_frees() -> None:
    clock = VirtualTime()
    limiter = InMemorySlidingWindowLimiter(3, 1.0, "throttle", clock.clock, sleep=clock.sleep)

    grants = asyncio.run(acquire_in_order(limiter, clock, 7))

    assert [at for _, at in grants] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]


def test_limiter_margin_widens_window() -> None:
    clock = VirtualTime()
    limiter = InMemorySlidingWindowLimiter(
        3, 1.0, "throttle", clock.clock, sleep=clock.sleep, margin=0.25
    )

    grants = asyncio.run(acquire_in_order(limiter, clock, 7))

    assert [at for _, at in grants] == [0.0, 0.0, 0.0, 1.25, 1.25, 1.25, 2.5]


def test_limiter_rejects_negative_margin() -> None:
    with pytest.raises(ValueError, match="margin"):
        InMemorySlidingWindowLimiter(1, 1.0, margin=-0.1)


def test_limiter_for_adds_arrival_margin() -> None:
    settings = EndpointSettings(conn_id="registry_margin", base_url="http://127.0.0.1:1")

    limiter = limiter_for(settings)

    assert isinstance(limiter, InMemorySlidingWindowLimiter)
    assert limiter.margin == SERVER_ARRIVAL_MARGIN_SECONDS


def test_limiter_only_first_waiter_sleeps() -> None:
    async def scenario() -> int:
        clock = ManualTime()
        limiter = InMemorySlidingWindowLimiter(1, 1.0, "throttle", clock.clock, sleep=clock.sleep)
        await limiter.acquire()
        waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        sleeping = clock.sleeping
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        return sleeping

    assert asyncio.run(scenario()) == 1


def test_limiter_cancelled_first_waiter_passes_turn() -> None:
    async def scenario() -> bool:
        clock = ManualTime()
        limiter = InMemorySlidingWindowLimiter(1, 1.0, "throttle", clock.clock, sleep=clock.sleep)
        await limiter.acquire()
        first = asyncio.create_task(limiter.acquire())
        second = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        await asyncio.sleep(0)

        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.sleep(0)
        clock.advance(1.0)
        return await asyncio.wait_for(second, timeout=5)

    assert asyncio.run(scenario()) is True


def test_limiter_reject_mode_refuses_over_limit() -> None:
    async def scenario() -> list[bool]:
        clock = VirtualTime()
        limiter = InMemorySlidingWindowLimiter(2, 1.0, "reject", clock.clock, sleep=clock.sleep)
        results = [await limiter.acquire() for _ in range(3)]
        clock.now += 1.0
        results.append(await limiter.acquire())
        return results

    assert asyncio.run(scenario()) == [True, True, False, True]


def test_limiter_full_default_rate_in_one_window() -> None:
    async def scenario() -> tuple[int, bool]:
        clock = VirtualTime()
        limiter = InMemorySlidingWindowLimiter(300_000, 60.0, "reject", clock.clock)
        granted = 0
        for _ in range(300_000):
            granted += await limiter.acquire()
        clock.now = 59.999
        return granted, await limiter.acquire()

    granted, extra = asyncio.run(scenario())

    assert granted == 300_000
    assert extra is False


@pytest.mark.parametrize(
    "calls, period, mode", [(0, 1.0, "throttle"), (1, 0.0, "throttle"), (1, 1.0, "drop")]
)
def test_limiter_rejects_invalid_settings(calls: int, period: float, mode: str) -> None:
    with pytest.raises(ValueError):
        InMemorySlidingWindowLimiter(calls, period, mode)


def test_limiter_for_shares_per_connection() -> None:
    first = EndpointSettings(conn_id="registry_a", base_url="http://127.0.0.1:1")
    again = EndpointSettings(conn_id="registry_a", base_url="http://127.0.0.1:1", timeout=5)
    other = EndpointSettings(conn_id="registry_b", base_url="http://127.0.0.1:1")

    assert limiter_for(first) is limiter_for(again)
    assert limiter_for(first) is not limiter_for(other)


def test_limiter_for_new_limiter_when_cap_changes() -> None:
    before = EndpointSettings(conn_id="registry_c", base_url="http://127.0.0.1:1")
    after = EndpointSettings(
        conn_id="registry_c", base_url="http://127.0.0.1:1", calls_per_period=5
    )

    assert limiter_for(before) is not limiter_for(after)
