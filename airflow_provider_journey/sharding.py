"""Split one audience into shards that run as mapped task instances, and merge their summaries.

A profile's shard is a hash of its profile id modulo the shard count. Every shard task
reads the whole audience and keeps only its own profiles, and the same profile lands in
the same shard on every run and every retry. Mapping over a few shard numbers,
rather than over profiles, keeps the number of task instances far below Airflow's
``[core] max_map_length`` (1,024 by default)::

    send = CustomActionOperator.partial(
        task_id="send", action="push", audience=..., parameters=..., shard_count=4
    ).expand(shard=shard_numbers(4))

    @task
    def summarize(summaries):
        return merge_shard_summaries(summaries)

    summarize(send.output)

Each shard writes its outcomes to a results directory of its own (``map-<index>``), and
its idempotency keys include the map index, so shards never share a key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_journey.audiences import Audience
from airflow_provider_journey.summary import merge_summaries
from airflow_provider_journey.types import Profile

# Kept apart from the percentage split's hash, so shards and branches are independent.
_SHARD_SALT = b"journey-shard\x00"


def shard_of(profile_id: str, shard_count: int) -> int:
    """Return the shard (0 to ``shard_count - 1``) of a profile id; the same on every run."""
    check_shard(0, shard_count)
    digest = hashlib.blake2b(_SHARD_SALT + profile_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


def check_shard(shard: int, shard_count: int) -> None:
    """Raise ValueError unless ``shard`` is a valid shard number for ``shard_count`` shards."""
    if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
        raise ValueError(f"shard_count must be a whole number of 1 or more, got {shard_count!r}")
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shard_count:
        raise ValueError(
            f"shard must be a whole number from 0 to {shard_count - 1} "
            f"(shard_count {shard_count}), got {shard!r}"
        )


def shard_numbers(shard_count: int) -> list[int]:
    """Return ``[0, 1, ..., shard_count - 1]``, the values to ``.expand(shard=...)`` over."""
    check_shard(0, shard_count)
    return list(range(shard_count))


class ShardedAudience(Audience):
    """The profiles of ``audience`` whose shard is ``shard``; the audience is still streamed.

    A profile without an id cannot be hashed, so it goes to shard 0. It ends there as
    ``invalid``, exactly once.
    """

    def __init__(self, audience: Audience, shard: int, shard_count: int) -> None:
        check_shard(shard, shard_count)
        self.audience = audience
        self.shard = shard
        self.shard_count = shard_count

    def profiles(self) -> Iterator[Profile]:
        for profile in self.audience.profiles():
            if profile.id is None or profile.id == "":
                if self.shard == 0:
                    yield profile
            elif shard_of(str(profile.id), self.shard_count) == self.shard:
                yield profile


def merge_shard_summaries(summaries: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Merge the summaries that the shard tasks returned into one summary of the whole run.

    Takes the mapped task's output (a lazy sequence in Airflow), so it works as the body
    of a ``@task``. ``None`` entries (a shard that returned nothing) are ignored.
    """
    present = [summary for summary in summaries if summary is not None]
    _check_every_shard_ran(present)
    return merge_summaries(present)


def _check_every_shard_ran(summaries: list[Mapping[str, Any]]) -> None:
    """Raise ValueError when a shard of 0 .. shard_count - 1 has no summary.

    Profiles of a shard that never ran are not sent and not recorded, so merging the
    other shards alone would report a smaller audience as a complete run.
    """
    counts = {summary["shard_count"] for summary in summaries if "shard_count" in summary}
    if not counts:
        return
    if len(counts) > 1:
        raise ValueError(
            f"the shards disagree on shard_count ({sorted(counts)}); give every shard task "
            "the same shard_count"
        )
    shard_count = counts.pop()
    missing = sorted(set(range(shard_count)) - {summary.get("shard") for summary in summaries})
    if missing:
        raise ValueError(
            f"no summary for shard(s) {missing} of shard_count {shard_count}: their "
            f"profiles were not sent. Map over shard_numbers({shard_count}) so every "
            "shard runs, or make shard_count match the number of shards you map over"
        )
