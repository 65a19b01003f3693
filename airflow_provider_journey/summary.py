"""The run summary an action task pushes to XCom: counts, latency percentiles, throughput.

The summary stays small whatever the audience size. Latencies go into a fixed
log-scale histogram instead of a list, and the histogram is part of the summary, so
the summaries of mapped shards merge exactly (``merge_summaries``).

Definitions used in the summary:

- ``sent``: outcomes whose request reached the endpoint or timed out on it
  (``succeeded``, ``failed``, ``timed_out``).
- ``throughput``: ``sent`` per second of the run, None for a run of zero duration.
- ``attempted``: outcomes that went to the sending stage (``sent`` plus ``capped``).
  ``invalid`` profiles (nothing could be rendered) and ``skipped`` ones (done by an
  earlier try) are left out.
- ``error_rate``: (``failed`` + ``timed_out`` + ``capped``) / ``attempted``, and 0.0
  when nothing was attempted. Invalid profiles are counted under ``counts`` but do
  not raise the error rate, because they say nothing about the endpoint.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_journey.types import Outcome, OutcomeStatus

PERCENTILES = (50, 90, 99)

_SENT = (OutcomeStatus.SUCCEEDED.value, OutcomeStatus.FAILED.value, OutcomeStatus.TIMED_OUT.value)
_ERRORS = (OutcomeStatus.FAILED.value, OutcomeStatus.TIMED_OUT.value, OutcomeStatus.CAPPED.value)


class LatencyHistogram:
    """Latencies counted in log-scale buckets: flat memory, about 2 % relative error.

    Bucket 0 counts latencies under ``MIN_MS``. Bucket ``i`` (1 and up) counts
    ``[MIN_MS * 2**((i-1)/PER_DOUBLING), MIN_MS * 2**(i/PER_DOUBLING))``, and the last
    bucket also counts everything above its lower bound. Min, max, count and sum are exact.
    """

    MIN_MS = 0.1
    PER_DOUBLING = 16
    # 26 doublings above 0.1 ms reach about 1.9 hours, far past any call timeout.
    BUCKETS = 26 * PER_DOUBLING + 1
    SCHEME = f"log2/{PER_DOUBLING} from {MIN_MS} ms, {BUCKETS} buckets"

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum_ms = 0.0
        self.min_ms: float | None = None
        self.max_ms: float | None = None

    def add(self, latency_ms: float) -> None:
        """Count one latency in milliseconds."""
        if latency_ms < 0.0:
            latency_ms = 0.0
        if latency_ms < self.MIN_MS:
            index = 0
        else:
            index = math.floor(math.log2(latency_ms / self.MIN_MS) * self.PER_DOUBLING) + 1
            if index >= self.BUCKETS:
                index = self.BUCKETS - 1
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1
        self.count += 1
        self.sum_ms += latency_ms
        if self.min_ms is None or latency_ms < self.min_ms:
            self.min_ms = latency_ms
        if self.max_ms is None or latency_ms > self.max_ms:
            self.max_ms = latency_ms

    def merge(self, other: LatencyHistogram) -> None:
        """Add the counts of ``other`` to this histogram."""
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count
        self.count += other.count
        self.sum_ms += other.sum_ms
        for value in (other.min_ms, other.max_ms):
            if value is None:
                continue
            self.min_ms = value if self.min_ms is None else min(self.min_ms, value)
            self.max_ms = value if self.max_ms is None else max(self.max_ms, value)

    def percentile(self, percent: float) -> float | None:
        """Estimate a percentile (nearest rank) in ms; None when the histogram is empty."""
        if self.count == 0 or self.min_ms is None or self.max_ms is None:
            return None
        rank = max(1, math.ceil(percent / 100 * self.count))
        # The lowest and highest ranks are known exactly.
        if rank == 1:
            return self.min_ms
        if rank >= self.count:
            return self.max_ms
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                break
        if index == self.BUCKETS - 1:
            # The last bucket has no upper bound, so its middle means nothing.
            return self.max_ms
        estimate = self._bucket_midpoint(index)
        return min(max(estimate, self.min_ms), self.max_ms)

    def to_dict(self) -> dict[str, Any]:
        """Return the histogram as a compact JSON-ready dict; only non-empty buckets appear."""
        return {
            "scheme": self.SCHEME,
            "count": self.count,
            "sum_ms": self.sum_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "buckets": {str(index): self.buckets[index] for index in sorted(self.buckets)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from ``to_dict()`` output.

        :raises ValueError: if the dict was written with another bucket scheme.
        """
        if data.get("scheme") != cls.SCHEME:
            raise ValueError(
                f"latency histogram scheme {data.get('scheme')!r} differs from "
                f"{cls.SCHEME!r}; summaries from different provider versions cannot be merged"
            )
        histogram = cls()
        histogram.buckets = {int(index): int(count) for index, count in data["buckets"].items()}
        histogram.count = int(data["count"])
        histogram.sum_ms = float(data["sum_ms"])
        histogram.min_ms = data["min_ms"]
        histogram.max_ms = data["max_ms"]
        return histogram

    def _bucket_midpoint(self, index: int) -> float:
        if index == 0:
            return self.MIN_MS / 2
        # Geometric middle of [lower, lower * 2**(1/PER_DOUBLING)).
        return float(self.MIN_MS * 2 ** ((index - 0.5) / self.PER_DOUBLING))


class SummaryBuilder:
    """Collect the outcomes of one action run into a small, JSON-ready summary.

    The clock starts when the builder is created; ``finish()`` stops it, and
    ``to_dict()`` before ``finish()`` reports the run so far.

    :param action: the action name.
    :param results_uri: where the run's outcomes are stored.
    """

    def __init__(self, action: str, results_uri: str) -> None:
        self.action = action
        self.results_uri = results_uri
        self.counts: dict[str, int] = {status.value: 0 for status in OutcomeStatus}
        self.status_codes: dict[str, int] = {}
        self.attempts = 0
        self.latency = LatencyHistogram()
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self._started_monotonic = time.monotonic()
        self._finished_at: dt.datetime | None = None
        self._duration_seconds: float | None = None

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        self.counts[outcome.status.value] += 1
        if outcome.status_code is not None:
            self.status_codes[outcome.status_code] = (
                self.status_codes.get(outcome.status_code, 0) + 1
            )
        self.attempts += outcome.attempts
        if outcome.latency_ms is not None:
            self.latency.add(outcome.latency_ms)

    def finish(self) -> None:
        """Stop the clock; later calls keep the first finish time."""
        if self._finished_at is None:
            self._finished_at = dt.datetime.now(dt.timezone.utc)
            self._duration_seconds = time.monotonic() - self._started_monotonic

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict."""
        finished_at = self._finished_at or dt.datetime.now(dt.timezone.utc)
        duration = self._duration_seconds
        if duration is None:
            duration = time.monotonic() - self._started_monotonic
        return _build_summary(
            action=self.action,
            results_uri=self.results_uri,
            counts=self.counts,
            status_codes=self.status_codes,
            attempts=self.attempts,
            latency=self.latency,
            started_at=self.started_at,
            finished_at=finished_at,
            duration_seconds=duration,
        )


def merge_summaries(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge the summaries of the shards of one action run into one summary.

    Counts add up and percentiles come from the merged histograms, so they are the
    same as if one task had run everything. The run spans from the earliest start to
    the latest finish. ``results_uri`` is None and ``results_uris`` lists each shard's
    directory.

    :raises ValueError: if there are no summaries or they belong to different actions.
    """
    summaries = list(summaries)
    if not summaries:
        raise ValueError("merge_summaries needs at least one summary")
    actions = sorted({str(summary["action"]) for summary in summaries})
    if len(actions) > 1:
        raise ValueError(f"cannot merge summaries of different actions: {', '.join(actions)}")

    counts: dict[str, int] = {status.value: 0 for status in OutcomeStatus}
    status_codes: dict[str, int] = {}
    latency = LatencyHistogram()
    attempts = 0
    uris: list[str] = []
    for summary in summaries:
        for status, count in summary["counts"].items():
            counts[status] = counts.get(status, 0) + int(count)
        for code, count in summary["status_codes"].items():
            status_codes[code] = status_codes.get(code, 0) + int(count)
        latency.merge(LatencyHistogram.from_dict(summary["latency_histogram"]))
        attempts += int(summary["attempts"])
        uris.extend(summary.get("results_uris") or [summary["results_uri"]])

    started_at = min(dt.datetime.fromisoformat(summary["started_at"]) for summary in summaries)
    finished_at = max(dt.datetime.fromisoformat(summary["finished_at"]) for summary in summaries)
    merged = _build_summary(
        action=actions[0],
        results_uri=None,
        counts=counts,
        status_codes=status_codes,
        attempts=attempts,
        latency=latency,
        started_at=started_at,
        finished_at=finished_at,
        duration_seconds=(finished_at - started_at).total_seconds(),
    )
    merged["results_uris"] = uris
    merged["shards"] = len(summaries)
    return merged


def _build_summary(
    *,
    action: str,
    results_uri: str | None,
    counts: Mapping[str, int],
    status_codes: Mapping[str, int],
    attempts: int,
    latency: LatencyHistogram,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    duration_seconds: float,
) -> dict[str, Any]:
    sent = sum(counts[status] for status in _SENT)
    attempted = sent + counts[OutcomeStatus.CAPPED.value]
    errors = sum(counts[status] for status in _ERRORS)
    return {
        "action": action,
        "results_uri": results_uri,
        "total": sum(counts.values()),
        "counts": dict(counts),
        "status_codes": dict(sorted(status_codes.items())),
        "sent": sent,
        "attempted": attempted,
        "attempts": attempts,
        "error_rate": errors / attempted if attempted else 0.0,
        "latency_ms": _latency_figures(latency),
        "latency_histogram": latency.to_dict(),
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "duration_seconds": round(duration_seconds, 3),
        "throughput": round(sent / duration_seconds, 3) if duration_seconds > 0 else None,
    }


def _latency_figures(latency: LatencyHistogram) -> dict[str, float | None]:
    figures: dict[str, float | None] = {}
    for percent in PERCENTILES:
        value = latency.percentile(percent)
        figures[f"p{percent}"] = round(value, 3) if value is not None else None
    figures["max"] = round(latency.max_ms, 3) if latency.max_ms is not None else None
    figures["mean"] = round(latency.sum_ms / latency.count, 3) if latency.count else None
    return figures
