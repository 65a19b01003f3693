"""Capping checked at the server: the arrival time of each request against the cap."""

from __future__ import annotations

import uuid
from pathlib import Path

from delivery_support import NOTIFY_MAPPING, notify_action, read_jsonl, receiver_process

from airflow_provider_journey.audiences import ListAudience
from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.runner import RunIdentity, RunOptions, run_action

CALLS = 40
PERIOD = 0.5
PROFILES = 240
# The receiver stamps arrivals with time.time(); this covers its resolution only.
CLOCK_RESOLUTION = 0.001


def max_in_half_open_window(times: list[float], period: float) -> int:
    """Return the largest number of ``times`` inside any window [t, t + period)."""
    ordered = sorted(times)
    largest = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= period:
            start += 1
        largest = max(largest, end - start + 1)
    return largest


def test_throttle_cap_holds_at_server(tmp_path: Path) -> None:
    record_path = tmp_path / "requests.jsonl"
    profiles = [{"profile_id": f"c{index}", "group": "main"} for index in range(PROFILES)]

    with receiver_process(record_path, [], seed=1) as url:
        settings = EndpointSettings.from_connection_fields(
            f"server_cap_{uuid.uuid4().hex}",
            host=url,
            extra={"calls_per_period": CALLS, "period_seconds": PERIOD},
        )
        summary = run_action(
            notify_action(),
            settings,
            ListAudience(profiles),
            NOTIFY_MAPPING,
            identity=RunIdentity("delivery", "server-cap", "notify"),
            run_context={},
            results_dir=tmp_path / "results",
            options=RunOptions(concurrency=16),
        )

    arrivals = [float(request["received_at"]) for request in read_jsonl(record_path)]

    assert summary["counts"]["succeeded"] == PROFILES
    assert len(arrivals) == PROFILES
    assert max_in_half_open_window(arrivals, PERIOD - CLOCK_RESOLUTION) <= CALLS
