from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine.policy import CallPolicy, backoff_delay, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_policy_defaults_match_design() -> None:
    policy = CallPolicy()

    assert policy.timeout == 30.0
    assert policy.max_retries == 3
    assert policy.retry_statuses == frozenset({408, 429, 500, 502, 503, 504})
    assert policy.max_response_bytes == 1024 * 1024


def test_policy_for_endpoint_takes_connection_timeout() -> None:
    settings = EndpointSettings(conn_id="crm", base_url="http://127.0.0.1:1", timeout=7.5)

    policy = CallPolicy.for_endpoint(settings, max_retries=1)

    assert policy.timeout == 7.5
    assert policy.max_retries == 1


@pytest.mark.parametrize(
    "field, value",
    [("timeout", 0), ("timeout", float("inf")), ("max_retries", -1), ("backoff_base", -0.1)],
)
def test_policy_rejects_invalid_value(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        CallPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_backoff_equal_jitter_within_half_and_full_ceiling(attempt: int) -> None:
    policy = CallPolicy(backoff_base=0.5, backoff_max=30.0, jitter="equal")
    ceiling = 0.5 * 2 ** (attempt - 1)
    rng = random.Random(attempt)

    delays = [backoff_delay(attempt, policy, rng) for _ in range(200)]

    assert min(delays) >= ceiling / 2
    assert max(delays) <= ceiling


def test_backoff_full_jitter_within_zero_and_ceiling() -> None:
    policy = CallPolicy(backoff_base=1.0, jitter="full")
    rng = random.Random(1)

    delays = [backoff_delay(3, policy, rng) for _ in range(200)]

    assert min(delays) >= 0.0
    assert max(delays) <= 4.0


def test_backoff_stops_at_backoff_max() -> None:
    policy = CallPolicy(backoff_base=0.5, backoff_max=2.0)

    delay = backoff_delay(10_000, policy, random.Random(3))

    assert delay <= 2.0


@pytest.mark.parametrize(
    "value, expected",
    [("5", 5.0), (" 12 ", 12.0), ("0", 0.0), ("-3", 0.0), ("1.5", 1.5)],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize("value", ["", "soon", "nan", "inf", "Mon, 99 Foo 2026"])
def test_retry_after_invalid_is_none(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_http_date_in_future() -> None:
    value = format_datetime(NOW + timedelta(seconds=10), usegmt=True)

    assert parse_retry_after(value, NOW) == 10.0


def test_retry_after_http_date_in_past_is_zero() -> None:
    value = format_datetime(NOW - timedelta(minutes=5), usegmt=True)

    assert parse_retry_after(value, NOW) == 0.0
