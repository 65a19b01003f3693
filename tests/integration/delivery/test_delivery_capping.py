"""Capping stores: the Redis window shared by processes, reject mode, and shard splitting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from delivery_support import (
    NOTIFY_MAPPING,
    max_in_window,
    notify_action,
    read_jsonl,
    receiver_process,
    require_redis,
)

from airflow_provider_journey.audiences import ListAudience
from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine.capping import (
    CappingStoreError,
    InMemorySlidingWindowLimiter,
    RedisSlidingWindowLimiter,
    limiter_for,
)
from airflow_provider_journey.exceptions import EndpointConfigError
from airflow_provider_journey.outcomes import read_outcome_records
from airflow_provider_journey.runner import RunIdentity, RunOptions, run_action
from airflow_provider_journey.sharding import ShardedAudience, shard_numbers, shard_of

REDIS_URL = "redis://127.0.0.1:6379/3"

ACQUIRE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from airflow_provider_journey.engine.capping import RedisSlidingWindowLimiter

    url, prefix, calls, period, count = sys.argv[1:6]
    limiter = RedisSlidingWindowLimiter(url, "shared", int(calls), float(period), key_prefix=prefix)

    async def main():
        async def one():
            await limiter.acquire()
            print(time.time(), flush=True)
        await asyncio.gather(*(one() for _ in range(int(count))))

    asyncio.run(main())
    """
)


def unique_prefix() -> str:
    return f"journey-test-{uuid.uuid4().hex}"


def test_redis_limiter_shared_by_processes(tmp_path: Path) -> None:
    require_redis()
    script = tmp_path / "acquire.py"
    script.write_text(ACQUIRE_SCRIPT, encoding="utf-8")
    prefix = unique_prefix()
    calls, period = 10, 1.0

    processes = [
        subprocess.Popen(
            [sys.executable, str(script), REDIS_URL, prefix, str(calls), str(period), "25"],
            stdout=subprocess.PIPE,
            env=dict(os.environ),
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    grants = [float(line) for output in outputs for line in output.split()]

    assert len(grants) == 50
    # Redis stamps a grant when the call is sent, not when it returns. 20 ms covers that gap.
    assert max_in_window(grants, period - 0.02) <= calls


def test_redis_limiter_reject_mode() -> None:
    require_redis()
    limiter = RedisSlidingWindowLimiter(
        REDIS_URL, "reject", 3, 60, "reject", key_prefix=unique_prefix()
    )

    async def take(count: int) -> list[bool]:
        return [await limiter.acquire() for _ in range(count)]

    assert asyncio.run(take(5)) == [True, True, True, False, False]


def test_redis_limiter_rounds_period_up() -> None:
    limiter = RedisSlidingWindowLimiter(REDIS_URL, "round", 3, 1.5, key_prefix=unique_prefix())

    assert limiter.period == 2.0


def test_redis_limiter_unreachable_message() -> None:
    limiter = RedisSlidingWindowLimiter(
        "redis://user:s3cret-pass@127.0.0.1:1/0", "down", 3, 1, key_prefix=unique_prefix()
    )

    with pytest.raises(CappingStoreError) as raised:
        asyncio.run(limiter.acquire())

    assert "redis://127.0.0.1:1/0" in str(raised.value)
    assert "s3cret-pass" not in str(raised.value)


def test_limiter_for_picks_store() -> None:
    in_memory = EndpointSettings.from_connection_fields("memory_api", host="http://127.0.0.1")
    shared = EndpointSettings.from_connection_fields(
        "redis_api", host="http://127.0.0.1", extra={"redis_url": REDIS_URL}
    )

    assert isinstance(limiter_for(in_memory), InMemorySlidingWindowLimiter)
    assert isinstance(limiter_for(shared), RedisSlidingWindowLimiter)


def test_endpoint_rejects_other_redis_scheme() -> None:
    with pytest.raises(EndpointConfigError) as raised:
        EndpointSettings.from_connection_fields(
            "bad_redis", host="http://127.0.0.1", extra={"redis_url": "http://127.0.0.1:6379"}
        )

    assert "redis_url" in str(raised.value)


def test_reject_mode_capped_never_sent(tmp_path: Path) -> None:
    require_redis()
    record_path = tmp_path / "requests.jsonl"
    profiles = [{"profile_id": f"r{index}", "group": "main"} for index in range(30)]

    with receiver_process(record_path, [], seed=1) as url:
        settings = EndpointSettings.from_connection_fields(
            f"reject_{uuid.uuid4().hex}",
            host=url,
            extra={
                "calls_per_period": 10,
                "period_seconds": 60,
                "capping_mode": "reject",
                "redis_url": REDIS_URL,
            },
        )
        summary = run_action(
            notify_action(),
            settings,
            ListAudience(profiles),
            NOTIFY_MAPPING,
            identity=RunIdentity("delivery", "reject", "notify"),
            run_context={},
            results_dir=tmp_path / "results",
            options=RunOptions(concurrency=4),
        )

    outcomes = list(read_outcome_records(tmp_path / "results"))
    capped = {o["profile_id"] for o in outcomes if o["status"] == "capped"}
    sent = {request["body"]["profile"] for request in read_jsonl(record_path)}

    assert summary["counts"]["capped"] == 20
    assert summary["counts"]["succeeded"] == 10
    assert capped & sent == set()
    assert {o["attempts"] for o in outcomes if o["status"] == "capped"} == {0}


def test_in_memory_throttle_holds_window() -> None:
    limiter = InMemorySlidingWindowLimiter(5, 0.5)
    grants: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        grants.append(time.monotonic())

    async def run_all() -> None:
        await asyncio.gather(*(take() for _ in range(15)))

    asyncio.run(run_all())

    assert max_in_window(grants, 0.5 - 0.001) <= 5


def test_shards_partition_audience() -> None:
    profiles = [{"profile_id": f"s{index}"} for index in range(1_000)]
    audience = ListAudience(profiles)
    seen = Counter(
        profile.id
        for shard in shard_numbers(4)
        for profile in ShardedAudience(audience, shard, 4).profiles()
    )

    assert len(seen) == 1_000
    assert max(seen.values()) == 1


def test_shard_of_is_stable() -> None:
    assert [shard_of(f"s{index}", 4) for index in range(8)] == [
        shard_of(f"s{index}", 4) for index in range(8)
    ]


def test_shard_out_of_range_rejected() -> None:
    with pytest.raises(ValueError) as raised:
        ShardedAudience(ListAudience([]), 4, 4)

    assert "from 0 to 3" in str(raised.value)


def test_profile_without_id_in_shard_zero() -> None:
    audience = ListAudience([{"name": "no id"}])

    assert len(list(ShardedAudience(audience, 0, 2).profiles())) == 1
    assert list(ShardedAudience(audience, 1, 2).profiles()) == []
