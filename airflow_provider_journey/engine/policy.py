"""Call policy: timeout, retry budget, backoff, Retry-After handling and response limits."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from airflow_provider_journey.endpoint import DEFAULT_TIMEOUT_SECONDS, EndpointSettings

RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024

# 2**_MAX_EXPONENT seconds is far above any sensible backoff_max, and keeps the power finite.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class CallPolicy:
    """How one action calls its endpoint.

    :param timeout: seconds one attempt may take, from connecting to the last body byte.
    :param max_retries: attempts after the first one; 0 sends each request once.
    :param backoff_base: seconds before the first retry, doubled for every further retry.
    :param backoff_max: upper limit in seconds of one backoff delay.
    :param max_retry_wait: upper limit in seconds of a wait asked for by ``Retry-After``.
    :param retry_statuses: HTTP statuses that are retried; every other 4xx and 5xx is final.
    :param max_response_bytes: largest response body that is read and kept.
    :param keep_response_fields: dot paths of the fields kept from a 2xx JSON response.
    :param keep_error_fields: dot paths of the fields kept from an error JSON response.
    :param jitter: ``"equal"`` waits between half and all of the backoff delay, so a retry
        never fires right after the failure. ``"full"`` waits between 0 and the delay.
    """

    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_wait: float = 60.0
    retry_statuses: frozenset[int] = field(default=RETRY_STATUSES)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    keep_response_fields: tuple[str, ...] = ()
    keep_error_fields: tuple[str, ...] = ()
    jitter: Literal["equal", "full"] = "equal"

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            problems.append(f"timeout must be a number of seconds above 0, got {self.timeout!r}")
        if self.max_retries < 0:
            problems.append(f"max_retries must be 0 or more, got {self.max_retries!r}")
        for name in ("backoff_base", "backoff_max", "max_retry_wait"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a number of seconds, 0 or more, got {value!r}")
        if self.max_response_bytes < 0:
            problems.append(
                f"max_response_bytes must be 0 or more, got {self.max_response_bytes!r}"
            )
        if self.jitter not in ("equal", "full"):
            problems.append(f"jitter must be 'equal' or 'full', got {self.jitter!r}")
        if problems:
            raise ValueError("Invalid call policy: " + "; ".join(problems))

    @classmethod
    def for_endpoint(cls, settings: EndpointSettings, **overrides: Any) -> CallPolicy:
        """Build a policy whose timeout is the endpoint connection's, unless overridden."""
        overrides.setdefault("timeout", settings.timeout)
        return cls(**overrides)


def backoff_delay(attempt: int, policy: CallPolicy, rng: random.Random) -> float:
    """Return the seconds to wait before retry number ``attempt`` (1 for the first retry).

    The ceiling grows as ``backoff_base * 2 ** (attempt - 1)`` up to ``backoff_max``;
    the jitter spreads retries of many calls that failed at once.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    ceiling = min(policy.backoff_max, policy.backoff_base * 2.0**exponent)
    if policy.jitter == "full":
        return rng.uniform(0.0, ceiling)
    half = ceiling / 2.0
    return half + rng.uniform(0.0, half)


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` value requests to wait, or None when it is invalid.

    The value is either a number of seconds or an HTTP date, which is compared with
    ``now`` (the current UTC time by default). A negative number or a past date gives 0.
    """
    text = value.strip()
    if not text:
        return None

    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until_http_date(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)

    current = now if now is not None else datetime.now(timezone.utc)
    if current.tzinfo is None:
        current = current.replace(tzinfo=timezone.utc)
    return max((when - current).total_seconds(), 0.0)
