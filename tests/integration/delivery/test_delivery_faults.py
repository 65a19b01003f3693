"""Delivery under faults: 20,000 profiles against a receiver that injects errors, seeded.

The receiver runs in its own process and answers 10 % of attempts with 503 (HTML body),
5 % with 429 (Retry-After in seconds or as an HTTP date), 1 % slower than the timeout
and drops 1 % of connections. A few profiles get 401, 403 or 404 every time. The
checks compare the outcomes with what the receiver recorded.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from delivery_support import NOTIFY_MAPPING, notify_action, read_jsonl, receiver_process

from airflow_provider_journey.audiences import ListAudience
from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.outcomes import read_outcome_records
from airflow_provider_journey.runner import RunIdentity, RunOptions, run_action

PROFILE_COUNT = 20_000
NEVER_RETRIED = {"g401": 401, "g403": 403, "g404": 404}
PROFILES_PER_FINAL_STATUS = 20

FAULT_RULES: list[dict[str, Any]] = [
    *({"status": status, "when_body": {"group": group}} for group, status in NEVER_RETRIED.items()),
    {"status": 503, "rate": 0.10, "text_body": "<html><h1>503 Service Unavailable</h1></html>"},
    {"status": 429, "rate": 0.025, "retry_after": 1},
    {"status": 429, "rate": 0.025, "retry_after": 1, "retry_after_format": "http-date"},
    {"status": 200, "rate": 0.01, "delay_ms": 2500},
    {"drop": True, "rate": 0.01},
]


def make_profiles() -> list[dict[str, Any]]:
    profiles = [{"profile_id": f"p{index:05d}", "group": "main"} for index in range(PROFILE_COUNT)]
    position = 0
    for group in NEVER_RETRIED:
        for _ in range(PROFILES_PER_FINAL_STATUS):
            profiles[position * 97]["group"] = group
            position += 1
    return profiles


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the action once over the audience and return outcomes, receiver records and logs."""
    folder = tmp_path_factory.mktemp("faults")
    record_path = folder / "requests.jsonl"
    results_dir = folder / "results"
    handler = _ListHandler()
    logging.getLogger("airflow_provider_journey").addHandler(handler)
    logging.getLogger("airflow_provider_journey").setLevel(logging.INFO)
    try:
        with receiver_process(record_path, FAULT_RULES, seed=20_000) as url:
            settings = EndpointSettings.from_connection_fields(
                "faulty_api", host=url, extra={"max_connections": 128}
            )
            summary = run_action(
                notify_action(timeout_seconds=1),
                settings,
                ListAudience(make_profiles()),
                NOTIFY_MAPPING,
                identity=RunIdentity("delivery", "faults", "notify"),
                run_context={},
                results_dir=results_dir,
                options=RunOptions(concurrency=128, progress_interval=2.0),
            )
    finally:
        logging.getLogger("airflow_provider_journey").removeHandler(handler)

    return {
        "summary": summary,
        "outcomes": list(read_outcome_records(results_dir)),
        "requests": read_jsonl(record_path),
        "logs": handler.messages,
    }


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_faults_one_outcome_per_profile(fault_run: dict[str, Any]) -> None:
    ids = Counter(outcome["profile_id"] for outcome in fault_run["outcomes"])

    assert len(ids) == PROFILE_COUNT
    assert max(ids.values()) == 1


def test_faults_succeeded_match_answered_keys(fault_run: dict[str, Any]) -> None:
    answered = {
        request["headers"]["Idempotency-Key"]
        for request in fault_run["requests"]
        if 200 <= request["status"] < 300
    }
    succeeded = [o for o in fault_run["outcomes"] if o["status"] == "succeeded"]

    # A 2xx answer that came after the timeout counts at the receiver but not here.
    late = _late_success_keys(fault_run["requests"], fault_run["outcomes"])
    assert len(succeeded) == len(answered - late)


def test_faults_no_key_answered_twice(fault_run: dict[str, Any]) -> None:
    # Slow 2xx answers come after the client gave up, so they are not deliveries.
    answered = Counter(
        request["headers"]["Idempotency-Key"]
        for request in fault_run["requests"]
        if 200 <= request["status"] < 300 and request["delay_ms"] < 1000
    )

    assert max(answered.values()) == 1


def test_faults_attempts_match_receiver(fault_run: dict[str, Any]) -> None:
    seen = Counter(request["headers"]["Idempotency-Key"] for request in fault_run["requests"])
    mismatched = [
        (outcome["profile_id"], outcome["attempts"], seen[outcome["idempotency_key"]])
        for outcome in fault_run["outcomes"]
        if outcome["attempts"] != seen[outcome["idempotency_key"]]
    ]

    assert mismatched == []


@pytest.mark.parametrize(("group", "status"), sorted(NEVER_RETRIED.items()))
def test_faults_client_errors_not_retried(
    fault_run: dict[str, Any], group: str, status: int
) -> None:
    outcomes = [o for o in fault_run["outcomes"] if o["profile"]["group"] == group]

    assert len(outcomes) == PROFILES_PER_FINAL_STATUS
    assert {o["attempts"] for o in outcomes} == {1}
    assert {o["http_status"] for o in outcomes} == {status}


def test_faults_every_fault_happened(fault_run: dict[str, Any]) -> None:
    statuses = Counter(request["status"] for request in fault_run["requests"])
    slow = sum(1 for request in fault_run["requests"] if request["delay_ms"] >= 1000)

    assert statuses[503] > 0
    assert statuses[429] > 0
    assert statuses[0] > 0
    assert slow > 0


def test_faults_retries_logged_as_counts(fault_run: dict[str, Any]) -> None:
    retry_lines = [m for m in fault_run["logs"] if "retries:" in m]
    retries = sum(request["attempt"] > 1 for request in fault_run["requests"])

    assert retry_lines != []
    assert len(fault_run["logs"]) < retries / 10


def test_faults_most_profiles_succeed(fault_run: dict[str, Any]) -> None:
    counts = fault_run["summary"]["counts"]
    print("fault run outcomes per status:", {k: v for k, v in counts.items() if v})

    assert counts["succeeded"] >= PROFILE_COUNT * 0.99


def _late_success_keys(requests: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> set[str]:
    """Return keys whose only 2xx answers were slower than the timeout and not succeeded."""
    succeeded = {o["idempotency_key"] for o in outcomes if o["status"] == "succeeded"}
    late: set[str] = set()
    for request in requests:
        key = request["headers"]["Idempotency-Key"]
        if 200 <= request["status"] < 300 and request["delay_ms"] >= 1000 and key not in succeeded:
            late.add(key)
    return late
