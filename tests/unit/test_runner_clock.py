"""The runner's clock of outcome times: the text ``datetime.isoformat`` gives, formatted faster."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_journey.runner import UtcClock

UTC = dt.timezone.utc
SECOND = 1_000_000_000


def expected_text(nanoseconds: int) -> str:
    second, rest = divmod(nanoseconds, SECOND)
    moment = dt.datetime.fromtimestamp(second, UTC).replace(microsecond=rest // 1000)
    return moment.isoformat()


@pytest.mark.parametrize(
    "nanoseconds",
    [
        1_733_348_141 * SECOND,
        1_733_348_141 * SECOND + 999,
        1_733_348_141 * SECOND + 1000,
        1_733_348_141 * SECOND + 123_456_789,
        1_733_348_141 * SECOND + 999_999_999,
        4_102_444_800 * SECOND + 500_000,
        0,
    ],
)
def test_clock_formats_as_isoformat(nanoseconds: int) -> None:
    assert UtcClock().format(nanoseconds) == expected_text(nanoseconds)


def test_clock_follows_second_changes() -> None:
    clock = UtcClock()
    times = [100 * SECOND + 5_000, 100 * SECOND + 7_000, 101 * SECOND, 3600 * SECOND + 1_000]

    texts = [clock.format(nanoseconds) for nanoseconds in times]

    assert texts == [expected_text(nanoseconds) for nanoseconds in times]


def test_clock_now_is_current_time() -> None:
    clock = UtcClock()

    before = dt.datetime.now(UTC)
    stamped = dt.datetime.fromisoformat(clock.now_iso())
    after = dt.datetime.now(UTC)

    assert before <= stamped
    assert stamped <= after
