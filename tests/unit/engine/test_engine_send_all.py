from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiohttp import web
from engine_test_server import Recorder, prepared, serve, settings_for

from airflow_provider_journey.engine import CallPolicy, Sender
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest

POLICY = CallPolicy(backoff_base=0.01, backoff_max=0.05)


async def slow_ok(request: web.Request) -> web.Response:
    await asyncio.sleep(0.002)
    return web.json_response({"ok": True})


def run_all(
    items: Iterator[tuple[PreparedRequest, int]], concurrency: int
) -> tuple[list[tuple[Outcome, int]], Recorder, dict[str, object]]:
    results: list[tuple[Outcome, int]] = []

    async def run() -> tuple[Recorder, dict[str, object]]:
        async with serve(slow_ok) as (url, recorder):
            settings = settings_for(url, conn_id="send_all_endpoint")
            async with Sender(settings, "notify", POLICY, concurrency=concurrency) as sender:
                await sender.send_all(
                    items, lambda outcome, index: results.append((outcome, index))
                )
        return recorder, sender.counters.snapshot()

    recorder, counters = asyncio.run(run())
    return results, recorder, counters


def numbered(count: int) -> Iterator[tuple[PreparedRequest, int]]:
    for index in range(count):
        yield prepared(f"p{index}"), index


def test_send_all_one_outcome_per_item() -> None:
    results, recorder, _ = run_all(numbered(2000), concurrency=50)

    assert len(results) == 2000
    assert sorted(index for _, index in results) == list(range(2000))
    assert all(outcome.profile_id == f"p{index}" for outcome, index in results)
    assert recorder.count == 2000


def test_send_all_in_flight_within_concurrency() -> None:
    _, recorder, _ = run_all(numbered(2000), concurrency=50)

    assert recorder.max_active <= 50


def test_send_all_counters_match_outcomes() -> None:
    _, _, counters = run_all(numbered(300), concurrency=20)

    assert counters["succeeded"] == 300
    assert counters["attempts"] == 300
    assert counters["in_flight"] == 0


def test_send_all_consumes_items_lazily() -> None:
    pulled = 0
    pulled_at_first_outcome: list[int] = []

    def counting() -> Iterator[tuple[PreparedRequest, int]]:
        nonlocal pulled
        for index in range(500):
            pulled += 1
            yield prepared(f"p{index}"), index

    async def run() -> None:
        async with (
            serve(slow_ok) as (url, _),
            Sender(settings_for(url), "notify", POLICY, concurrency=10) as sender,
        ):
            await sender.send_all(
                counting(), lambda outcome, index: pulled_at_first_outcome.append(pulled)
            )

    asyncio.run(run())

    # Each of the 10 workers has one item; the first to finish may have pulled one more.
    assert pulled_at_first_outcome[0] <= 11


def test_send_all_raises_callback_error() -> None:
    def explode(outcome: Outcome, index: int) -> None:
        raise KeyError("results file closed")

    async def run() -> None:
        async with (
            serve(slow_ok) as (url, _),
            Sender(settings_for(url), "notify", POLICY, concurrency=4) as sender,
        ):
            await sender.send_all(numbered(50), explode)

    with pytest.raises(KeyError, match="results file closed"):
        asyncio.run(run())


def test_send_all_raises_audience_error() -> None:
    def broken() -> Iterator[tuple[PreparedRequest, int]]:
        yield prepared("p0"), 0
        raise ValueError("audience row 2 is unreadable")

    async def run() -> None:
        async with (
            serve(slow_ok) as (url, _),
            Sender(settings_for(url), "notify", POLICY, concurrency=4) as sender,
        ):
            await sender.send_all(broken(), lambda outcome, index: None)

    with pytest.raises(ValueError, match="row 2"):
        asyncio.run(run())


def test_send_all_mixed_outcomes_each_recorded() -> None:
    async def by_profile(request: web.Request) -> web.Response:
        body = await request.json()
        return web.Response(status=200 if body["n"] % 2 == 0 else 404)

    def items() -> Iterator[tuple[PreparedRequest, int]]:
        for index in range(40):
            request = prepared(f"p{index}", body=f'{{"n": {index}}}'.encode())
            yield request, index

    results: list[Outcome] = []

    async def run() -> None:
        async with (
            serve(by_profile) as (url, _),
            Sender(settings_for(url), "notify", POLICY, concurrency=8) as sender,
        ):
            await sender.send_all(items(), lambda outcome, index: results.append(outcome))

    asyncio.run(run())

    statuses = [outcome.status for outcome in results]
    assert statuses.count(OutcomeStatus.SUCCEEDED) == 20
    assert statuses.count(OutcomeStatus.FAILED) == 20
