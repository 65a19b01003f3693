"""merge_shard_summaries: every shard must have run before the merge."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_journey.sharding import merge_shard_summaries
from airflow_provider_journey.summary import SummaryBuilder
from airflow_provider_journey.types import Outcome, OutcomeStatus


def shard_summary(shard: int, shard_count: int) -> dict[str, Any]:
    builder = SummaryBuilder("notify", f"/results/map-{shard}/notify")
    builder.add(Outcome(f"p{shard}", "notify", OutcomeStatus.SUCCEEDED, "http_200", 200, 1, 5.0))
    builder.finish()
    summary = builder.to_dict()
    summary["shard"] = shard
    summary["shard_count"] = shard_count
    return summary


def test_merge_of_all_shards_counts_every_profile():
    merged = merge_shard_summaries([shard_summary(number, 3) for number in range(3)])
    assert merged["counts"]["succeeded"] == 3


def test_merge_with_missing_shard_raises():
    """Mapping over 3 shards with shard_count 4 would silently drop a quarter of the audience."""
    with pytest.raises(ValueError, match=r"no summary for shard\(s\) \[3\] of shard_count 4"):
        merge_shard_summaries([shard_summary(number, 4) for number in range(3)])


def test_merge_with_different_shard_counts_raises():
    with pytest.raises(ValueError, match="disagree on shard_count"):
        merge_shard_summaries([shard_summary(0, 2), shard_summary(1, 3)])


def test_merge_without_shard_fields_is_plain_merge():
    summaries = [shard_summary(number, 2) for number in range(2)]
    for summary in summaries:
        del summary["shard"], summary["shard_count"]
    assert merge_shard_summaries(summaries)["counts"]["succeeded"] == 2
