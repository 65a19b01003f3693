"""The in-memory capping store: an exact sliding window kept in one process."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import deque
from collections.abc import Awaitable, Callable

from airflow_provider_journey.endpoint import CAPPING_MODES


class InMemorySlidingWindowLimiter:
    """Exact sliding-window log of the last ``calls`` grants, kept in one process.

    A grant at time ``t`` is allowed only when the grant ``calls`` places back happened
    at ``t - period`` or earlier, so no half-open window of ``period`` seconds ever
    contains more than ``calls`` grants. The log is a ring buffer of ``calls`` floats, so
    each grant costs O(1) time and the memory is 8 bytes per slot.

    ``margin`` (seconds, 0 by default) widens the window the limiter enforces to
    ``period + margin``. The cap is promised for the times at which requests reach the
    server, and each request reaches it a varying delay after its grant. When that
    delay varies by no more than ``margin``, no window of ``period`` seconds at the
    server contains more than ``calls`` requests. The price is a rate of at most
    ``calls / (period + margin)`` per second.

    Waiters are served first in, first out. Only the first waiter sleeps, and only
    until the oldest grant leaves the window, then it hands over to the next waiter.

    NOTE: the limiter is meant for one event loop at a time. Two threads running
    separate event loops against the same instance are not supported.
    """

    def __init__(
        self,
        calls: int,
        period: float,
        mode: str = "throttle",
        clock: Callable[[], float] = time.monotonic,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        margin: float = 0.0,
    ) -> None:
        if calls < 1:
            raise ValueError(f"calls must be 1 or more, got {calls!r}")
        if not period > 0:
            raise ValueError(f"period must be a number of seconds above 0, got {period!r}")
        if mode not in CAPPING_MODES:
            raise ValueError(f"mode must be one of {', '.join(CAPPING_MODES)}, got {mode!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be a number of seconds of 0 or more, got {margin!r}")

        self.calls = calls
        self.period = float(period)
        self.margin = float(margin)
        self._window = self.period + self.margin
        self.mode = mode
        self._clock = clock
        self._sleep = sleep
        self._grants = array("d", [float("-inf")]) * calls
        self._oldest = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> bool:
        """Take one call slot, waiting for it in throttle mode."""
        if not self._waiters and self._try_grant():
            return True
        if self.mode == "reject":
            return False

        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            if self._waiters[0] is not turn:
                await turn
            while not self._try_grant():
                await self._sleep(self._seconds_until_free())
        finally:
            self._leave_queue(turn)
        return True

    def _try_grant(self) -> bool:
        now = self._clock()
        if now - self._grants[self._oldest] < self._window:
            return False
        self._grants[self._oldest] = now
        self._oldest = (self._oldest + 1) % self.calls
        return True

    def _seconds_until_free(self) -> float:
        return max(self._grants[self._oldest] + self._window - self._clock(), 0.0)

    def _leave_queue(self, turn: asyncio.Future[None]) -> None:
        """Remove a waiter (granted or cancelled) and wake the next one if this one led."""
        was_first = bool(self._waiters) and self._waiters[0] is turn
        if was_first:
            self._waiters.popleft()
        else:
            # A waiter cancelled while it waited for its turn.
            self._waiters.remove(turn)

        if was_first and self._waiters:
            following = self._waiters[0]
            if not following.done():
                following.set_result(None)
