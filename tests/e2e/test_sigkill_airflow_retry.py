"""A task process killed with SIGKILL mid-run, then retried by Airflow itself.

The scheduler and a LocalExecutor run the task; the test kills the task process (the
pid Airflow records for the task instance) once part of the audience is sent, and
Airflow retries the task. The retry must skip every profile with a final outcome and
re-send at most the calls that were in flight, under the same Idempotency-Key.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_components import (
    AirflowComponents,
    free_port,
    local_executor_env,
    start_local_components,
)

from airflow_provider_journey.outcomes import latest_outcomes
from airflow_provider_journey.receiver import Receiver

pytestmark = pytest.mark.e2e

DAG_ID = "sigkill_retry"
PROFILE_COUNT = 3000
CONCURRENCY = 16
KILL_AFTER_REQUESTS = 800

DAG_BODY = """
from datetime import timedelta

from airflow.sdk import DAG

from airflow_provider_journey.operators.custom_action import CustomActionOperator

ACTION = {{
    "name": "notify",
    "connection_id": "sigkill_receiver",
    "method": "POST",
    "path": "/notify",
    "parameters": {{"profile": {{"type": "string"}}}},
    "payload": {{"profile": "{{{{ profile }}}}"}},
}}

with DAG(
    "{dag_id}",
    schedule=None,
    catchup=False,
    default_args={{"retries": 1, "retry_delay": timedelta(seconds=1)}},
):
    CustomActionOperator(
        task_id="send",
        action=ACTION,
        audience={audience!r},
        parameters={{"profile": "{{{{ profile_id }}}}"}},
        concurrency={concurrency},
    )
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver(delay_ms="5-15", seed=9, max_records=20_000) as running:
        yield running


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sigkill")


@pytest.fixture(scope="module")
def airflow(work_dir: Path, receiver: Receiver) -> Iterator[AirflowComponents]:
    dags = work_dir / "dags"
    dags.mkdir()
    audience = work_dir / "audience.jsonl"
    with audience.open("w", encoding="utf-8") as stream:
        for number in range(PROFILE_COUNT):
            stream.write(json.dumps({"profile_id": f"p{number:05d}"}) + "\n")
    body = DAG_BODY.format(dag_id=DAG_ID, audience=str(audience), concurrency=CONCURRENCY)
    (dags / f"{DAG_ID}.py").write_text(body, encoding="utf-8")

    home = work_dir / "airflow"
    home.mkdir()
    port = free_port()
    env = local_executor_env(home, port, dags)
    env["AIRFLOW__JOURNEY__RESULTS_BASE"] = str(work_dir / "results")
    env["AIRFLOW_CONN_SIGKILL_RECEIVER"] = json.dumps(
        {"conn_type": "custom_action", "host": receiver.url}
    )
    components = AirflowComponents(home, env, port)
    try:
        start_local_components(components)
        yield components
    finally:
        components.stop()


@pytest.fixture(scope="module")
def killed_run(airflow: AirflowComponents, receiver: Receiver, work_dir: Path) -> dict[str, Any]:
    """Trigger the DAG, SIGKILL its task process mid-run, and wait for Airflow's retry."""
    airflow.wait_for("DAG parsed", lambda: airflow.request("GET", f"/api/v2/dags/{DAG_ID}"), 180)
    airflow.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run = airflow.request(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}}
    )
    task_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/send"

    airflow.wait_for(
        f"{KILL_AFTER_REQUESTS} requests sent",
        lambda: len(receiver.requests("/notify")) >= KILL_AFTER_REQUESTS,
        180,
    )
    task = airflow.request("GET", task_path)
    os.kill(task["pid"], signal.SIGKILL)
    sent_before_kill = len(receiver.requests("/notify"))
    killed_at = time.time()

    def finished() -> str | None:
        state = airflow.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}")
        return state["state"] if state["state"] in ("success", "failed") else None

    state = airflow.wait_for("DAG run finished", finished, 300)
    results = next((work_dir / "results").rglob("notify"))
    return {
        "state": state,
        "task": airflow.request("GET", task_path),
        "killed_at": killed_at,
        "sent_before_kill": sent_before_kill,
        "requests": receiver.requests("/notify"),
        "outcomes": list(latest_outcomes(results)),
    }


def test_retried_run_succeeds(killed_run: dict[str, Any]) -> None:
    assert killed_run["state"] == "success"
    assert killed_run["task"]["try_number"] == 2


def test_every_profile_has_one_final_outcome(killed_run: dict[str, Any]) -> None:
    ids = [outcome["profile_id"] for outcome in killed_run["outcomes"]]
    assert len(ids) == PROFILE_COUNT
    assert len(set(ids)) == PROFILE_COUNT
    assert {outcome["status"] for outcome in killed_run["outcomes"]} == {"succeeded"}


def test_repeats_bounded_by_calls_in_flight(killed_run: dict[str, Any]) -> None:
    per_profile: dict[str, int] = defaultdict(int)
    for request in killed_run["requests"]:
        per_profile[request["body"]["profile"]] += 1
    repeated = [profile for profile, count in per_profile.items() if count > 1]
    print(
        f"killed after {killed_run['sent_before_kill']} requests; "
        f"{len(repeated)} profiles sent again (bound {CONCURRENCY})"
    )
    assert len(repeated) <= CONCURRENCY
    assert max(per_profile.values()) <= 2


def test_repeat_keeps_idempotency_key(killed_run: dict[str, Any]) -> None:
    keys: dict[str, set[str]] = defaultdict(set)
    for request in killed_run["requests"]:
        keys[request["body"]["profile"]].add(request["headers"]["Idempotency-Key"])
    assert {len(profile_keys) for profile_keys in keys.values()} == {1}
