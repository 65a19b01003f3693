"""The Redis capping store: one sliding window shared by every process that names the same Redis.

It uses the moving-window strategy of the ``limits`` library (``limits.aio``, coredis
client). Redis keeps a list with the time of each of the last ``calls`` grants, and a Lua
script grants a slot only when the grant ``calls`` places back is older than the period.
The check and the push run as one script, so processes and workers cannot both take the
last slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from airflow_provider_journey.endpoint import CAPPING_MODES
from airflow_provider_journey.exceptions import JourneyError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_KEY_PREFIX = "journey-capping"
# A waiter sleeps at least this long between two tries, so a full window never turns
# into a busy loop of Redis calls.
MIN_POLL_SECONDS = 0.002
# The moving window rejects a grant at exactly "oldest + period", so waiters wake a
# little after it.
WAKE_MARGIN_SECONDS = 0.001


class CappingStoreError(JourneyError):
    """The shared capping store (Redis) could not be reached or failed."""


@dataclass
class _LoopBinding:
    """Redis client objects and the waiters' lock, valid for one event loop only."""

    loop: asyncio.AbstractEventLoop
    strategy: MovingWindowRateLimiter
    waiting: asyncio.Lock
    warm_up: asyncio.Task[object]


class RedisSlidingWindowLimiter:
    """At most ``calls`` grants in any window of ``period`` seconds, counted in Redis.

    ``period`` is rounded up to whole seconds, because Redis key expiry is in whole
    seconds; rounding up can only make the cap stricter. In ``throttle`` mode a call that
    finds the window full sleeps until the oldest grant leaves the window, then tries
    again. In this process one waiter at a time polls Redis, so waiting costs about one
    Redis call per freed slot, not one per waiting call. In ``reject`` mode a full window
    returns False at once.

    The Redis connection belongs to the event loop that opened it, so a new loop (each
    ``asyncio.run``) opens its own connection.

    NOTE: grant times come from each client's clock (``time.time()``), taken just before
    the Redis call, as the ``limits`` library sets them. A grant therefore counts from up
    to one Redis round trip (milliseconds on a local network) before it returns. Clients
    on different hosts also need synchronised clocks (NTP), or the window is off by their
    clock difference.
    """

    def __init__(
        self,
        url: str,
        name: str,
        calls: int,
        period: float,
        mode: str = "throttle",
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if calls < 1:
            raise ValueError(f"calls must be 1 or more, got {calls!r}")
        if not period > 0:
            raise ValueError(f"period must be a number of seconds above 0, got {period!r}")
        if mode not in CAPPING_MODES:
            raise ValueError(f"mode must be one of {', '.join(CAPPING_MODES)}, got {mode!r}")
        if urlsplit(url).scheme not in ("redis", "rediss"):
            raise ValueError(
                f"Redis URL for capping of {name!r} must start with redis:// or rediss://"
            )

        self.name = name
        self.calls = calls
        self.period = float(math.ceil(period))
        self.mode = mode
        self.key_prefix = key_prefix
        self._url = url
        self._item = RateLimitItemPerSecond(calls, int(self.period))
        self._sleep = sleep
        self._binding: _LoopBinding | None = None

    @property
    def location(self) -> str:
        """The Redis address without credentials, for messages and logs."""
        parts = urlsplit(self._url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"

    async def acquire(self) -> bool:
        """Take one call slot, waiting for it in throttle mode."""
        binding = await self._bind()
        if not binding.waiting.locked() and await self._hit(binding):
            return True
        if self.mode == "reject":
            return False

        async with binding.waiting:
            while not await self._hit(binding):
                await self._sleep(await self._seconds_until_free(binding))
        return True

    async def clear(self) -> None:
        """Forget every grant of this limiter's window, for tests and manual resets."""
        binding = await self._bind()
        await self._call(binding.strategy.clear(self._item, self.name))

    async def _bind(self) -> _LoopBinding:
        loop = asyncio.get_running_loop()
        if self._binding is None or self._binding.loop is not loop:
            storage = RedisStorage(
                "async+" + self._url, key_prefix=self.key_prefix, wrap_exceptions=True
            )
            strategy = MovingWindowRateLimiter(storage)
            # Redis stores the time at which a grant was requested, not when it returned.
            # Opening the connection before the first grant keeps the first grants from
            # being stamped a whole connect time earlier than they happen.
            warm_up = loop.create_task(self._call(strategy.get_window_stats(self._item, self.name)))
            self._binding = _LoopBinding(loop, strategy, asyncio.Lock(), warm_up)

        binding = self._binding
        await asyncio.shield(binding.warm_up)
        return binding

    async def _hit(self, binding: _LoopBinding) -> bool:
        return await self._call(binding.strategy.hit(self._item, self.name))

    async def _seconds_until_free(self, binding: _LoopBinding) -> float:
        stats = await self._call(binding.strategy.get_window_stats(self._item, self.name))
        if stats.remaining > 0:
            return MIN_POLL_SECONDS
        wait = stats.reset_time - time.time() + WAKE_MARGIN_SECONDS
        return min(max(wait, MIN_POLL_SECONDS), self.period)

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except StorageError as error:
            raise CappingStoreError(
                f"Capping store {self.location} failed for endpoint connection {self.name!r}: "
                f"{type(error.storage_error).__name__}: {error.storage_error}. Check that Redis "
                "is running and reachable, or remove redis_url to cap in memory per process."
            ) from error
