"""Bucket placement of the latency histogram, against the bounds its docstring states."""

from __future__ import annotations

import pytest

from airflow_provider_journey.summary import LatencyHistogram

MIN_MS = LatencyHistogram.MIN_MS
PER_DOUBLING = LatencyHistogram.PER_DOUBLING
LAST = LatencyHistogram.BUCKETS - 1


def lower_bound(index: int) -> float:
    return float(MIN_MS * 2 ** ((index - 1) / PER_DOUBLING))


def only_bucket(latency_ms: float) -> int:
    histogram = LatencyHistogram()
    histogram.add(latency_ms)
    assert sum(histogram.buckets.values()) == 1
    return next(iter(histogram.buckets))


@pytest.mark.parametrize("latency_ms", [0.0, 0.05, 0.0999])
def test_histogram_under_min_goes_to_bucket_zero(latency_ms: float) -> None:
    assert only_bucket(latency_ms) == 0


@pytest.mark.parametrize("latency_ms", [0.1, 0.13, 1.0, 3.2571, 42.0, 999.9, 30_000.0])
def test_histogram_bucket_contains_latency(latency_ms: float) -> None:
    index = only_bucket(latency_ms)

    assert lower_bound(index) <= latency_ms
    assert latency_ms < lower_bound(index + 1)


def test_histogram_huge_latency_goes_to_last_bucket() -> None:
    assert only_bucket(1e12) == LAST


def test_histogram_negative_latency_counts_as_zero() -> None:
    histogram = LatencyHistogram()
    histogram.add(-5.0)

    assert histogram.buckets == {0: 1}
    assert histogram.min_ms == 0.0
    assert histogram.sum_ms == 0.0


def test_histogram_tracks_min_and_max() -> None:
    histogram = LatencyHistogram()
    for latency_ms in (5.0, 1.0, 9.0, 3.0):
        histogram.add(latency_ms)

    assert histogram.min_ms == 1.0
    assert histogram.max_ms == 9.0
    assert histogram.count == 4
    assert histogram.sum_ms == 18.0


def test_histogram_nan_latency_raises() -> None:
    histogram = LatencyHistogram()

    with pytest.raises(ValueError):
        histogram.add(float("nan"))
