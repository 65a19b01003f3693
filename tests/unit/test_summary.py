"""Run summary: counts, error rate, latency histogram percentiles and merging of shards."""

from __future__ import annotations

import json
import random

import pytest

from airflow_provider_journey.summary import LatencyHistogram, SummaryBuilder, merge_summaries
from airflow_provider_journey.types import Outcome, OutcomeStatus

STATUS_CODES = {
    OutcomeStatus.SUCCEEDED: "http_200",
    OutcomeStatus.FAILED: "http_500",
    OutcomeStatus.TIMED_OUT: "timedout",
    OutcomeStatus.CAPPED: "capped",
    OutcomeStatus.INVALID: None,
    OutcomeStatus.SKIPPED: None,
}


def make_outcome(status: OutcomeStatus, latency_ms: float | None = None) -> Outcome:
    return Outcome(
        profile_id="p",
        action="push",
        status=status,
        status_code=STATUS_CODES[status],
        attempts=0 if latency_ms is None else 1,
        latency_ms=latency_ms,
    )


def build(statuses: dict[OutcomeStatus, int], uri: str = "/results/push") -> SummaryBuilder:
    builder = SummaryBuilder("push", uri)
    for status, count in statuses.items():
        sent = status in (OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED, OutcomeStatus.TIMED_OUT)
        for _ in range(count):
            builder.add(make_outcome(status, 10.0 if sent else None))
    return builder


MIXED = {
    OutcomeStatus.SUCCEEDED: 6,
    OutcomeStatus.FAILED: 2,
    OutcomeStatus.TIMED_OUT: 1,
    OutcomeStatus.CAPPED: 1,
    OutcomeStatus.INVALID: 3,
    OutcomeStatus.SKIPPED: 4,
}


def test_summary_counts_every_status() -> None:
    summary = build({OutcomeStatus.SUCCEEDED: 2}).to_dict()

    assert summary["counts"] == {
        "succeeded": 2,
        "failed": 0,
        "timed_out": 0,
        "capped": 0,
        "invalid": 0,
        "skipped": 0,
    }


def test_summary_total_and_status_codes() -> None:
    summary = build(MIXED).to_dict()

    assert summary["total"] == 17
    assert summary["status_codes"] == {"capped": 1, "http_200": 6, "http_500": 2, "timedout": 1}


def test_summary_sent_and_attempted() -> None:
    summary = build(MIXED).to_dict()

    assert summary["sent"] == 9
    assert summary["attempted"] == 10


def test_summary_error_rate_leaves_out_invalid_and_skipped() -> None:
    summary = build(MIXED).to_dict()

    assert summary["error_rate"] == pytest.approx(4 / 10)


def test_summary_error_rate_zero_when_nothing_attempted() -> None:
    summary = build({OutcomeStatus.INVALID: 3}).to_dict()

    assert summary["error_rate"] == 0.0


def test_summary_is_json_serialisable_and_names_results() -> None:
    summary = build(MIXED).to_dict()

    decoded = json.loads(json.dumps(summary))

    assert decoded["action"] == "push"
    assert decoded["results_uri"] == "/results/push"


def test_summary_stays_small_for_many_outcomes() -> None:
    builder = SummaryBuilder("push", "/results/push")
    generator = random.Random(7)
    for _ in range(50_000):
        builder.add(make_outcome(OutcomeStatus.SUCCEEDED, generator.lognormvariate(3, 1)))

    size = len(json.dumps(builder.to_dict()))

    assert size < 16_000


def test_summary_timing_fields() -> None:
    builder = build(MIXED)
    builder.finish()

    summary = builder.to_dict()

    assert summary["duration_seconds"] >= 0
    assert summary["finished_at"] >= summary["started_at"]


def test_summary_finish_freezes_finished_at() -> None:
    builder = build(MIXED)
    builder.finish()

    first = builder.to_dict()["finished_at"]
    second = builder.to_dict()["finished_at"]

    assert first == second


def test_summary_latency_without_sent_outcomes_is_none() -> None:
    summary = build({OutcomeStatus.INVALID: 1}).to_dict()

    assert summary["latency_ms"] == {
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
        "mean": None,
    }


def test_summary_latency_percentiles_within_bucket_error() -> None:
    builder = SummaryBuilder("push", "/results/push")
    for latency in range(1, 1001):
        builder.add(make_outcome(OutcomeStatus.SUCCEEDED, float(latency)))

    latency_ms = builder.to_dict()["latency_ms"]

    assert latency_ms["p50"] == pytest.approx(500, rel=0.03)
    assert latency_ms["p90"] == pytest.approx(900, rel=0.03)
    assert latency_ms["p99"] == pytest.approx(990, rel=0.03)
    assert latency_ms["max"] == 1000
    assert latency_ms["mean"] == pytest.approx(500.5)


def test_histogram_percentile_stays_within_observed_range() -> None:
    histogram = LatencyHistogram()
    for _ in range(10):
        histogram.add(42.0)

    assert histogram.percentile(50) == 42.0
    assert histogram.percentile(99) == 42.0


def test_histogram_counts_tiny_and_huge_latencies() -> None:
    histogram = LatencyHistogram()
    histogram.add(0.0)
    for _ in range(3):
        histogram.add(10_000_000.0)

    assert histogram.count == 4
    assert histogram.percentile(50) == 10_000_000.0
    assert histogram.percentile(1) == 0.0


def test_histogram_round_trips_through_dict() -> None:
    histogram = LatencyHistogram()
    for latency in (0.05, 1.0, 12.5, 300.0):
        histogram.add(latency)

    restored = LatencyHistogram.from_dict(json.loads(json.dumps(histogram.to_dict())))

    assert restored.to_dict() == histogram.to_dict()


def test_histogram_rejects_other_scheme() -> None:
    data = LatencyHistogram().to_dict()
    data["scheme"] = "linear"

    with pytest.raises(ValueError, match="cannot be merged"):
        LatencyHistogram.from_dict(data)


def test_merge_adds_counts() -> None:
    first = build(MIXED, "/results/map-0/push").to_dict()
    second = build({OutcomeStatus.FAILED: 5}, "/results/map-1/push").to_dict()

    merged = merge_summaries([first, second])

    assert merged["total"] == 22
    assert merged["counts"]["failed"] == 7
    assert merged["status_codes"]["http_500"] == 7
    assert merged["error_rate"] == pytest.approx(9 / 15)
    assert merged["shards"] == 2


def test_merge_lists_shard_results() -> None:
    first = build(MIXED, "/results/map-0/push").to_dict()
    second = build(MIXED, "/results/map-1/push").to_dict()

    merged = merge_summaries([first, second])

    assert merged["results_uri"] is None
    assert merged["results_uris"] == ["/results/map-0/push", "/results/map-1/push"]


def test_merge_percentiles_equal_single_run() -> None:
    generator = random.Random(11)
    latencies = [generator.lognormvariate(4, 0.8) for _ in range(3000)]
    whole = SummaryBuilder("push", "/results/push")
    shards = [SummaryBuilder("push", f"/results/map-{index}/push") for index in range(3)]
    for index, latency in enumerate(latencies):
        whole.add(make_outcome(OutcomeStatus.SUCCEEDED, latency))
        shards[index % 3].add(make_outcome(OutcomeStatus.SUCCEEDED, latency))

    merged = merge_summaries(shard.to_dict() for shard in shards)

    assert merged["latency_ms"] == whole.to_dict()["latency_ms"]


def test_merge_spans_earliest_start_to_latest_finish() -> None:
    first = build(MIXED).to_dict()
    second = build(MIXED).to_dict()
    first["started_at"], first["finished_at"] = (
        "2026-01-01T10:00:00+00:00",
        "2026-01-01T10:00:30+00:00",
    )
    second["started_at"], second["finished_at"] = (
        "2026-01-01T10:00:10+00:00",
        "2026-01-01T10:01:00+00:00",
    )

    merged = merge_summaries([first, second])

    assert merged["duration_seconds"] == 60
    assert merged["throughput"] == pytest.approx(18 / 60)


def test_merge_of_merged_summaries_keeps_all_uris() -> None:
    inner = merge_summaries([build(MIXED, "/a").to_dict(), build(MIXED, "/b").to_dict()])

    merged = merge_summaries([inner, build(MIXED, "/c").to_dict()])

    assert merged["results_uris"] == ["/a", "/b", "/c"]


def test_merge_rejects_different_actions() -> None:
    other = SummaryBuilder("email", "/results/email").to_dict()

    with pytest.raises(ValueError, match="different actions: email, push"):
        merge_summaries([build(MIXED).to_dict(), other])


def test_merge_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one summary"):
        merge_summaries([])
