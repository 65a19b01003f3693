"""End to end: scheduler, dag-processor and api-server on 127.0.0.1 run welcome_journey.

The DAG run is triggered through Airflow's REST API, as a user or another system
would, and the test checks what the receiver got.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_components import (
    AirflowComponents,
    free_port,
    local_executor_env,
    start_local_components,
)

from airflow_provider_journey.demo.profiles import write_sqlite
from airflow_provider_journey.receiver import Receiver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "welcome_journey"
PROFILE_COUNT = 300
RUN_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver(rules=[{"path": "/push", "status": 503, "first": 1}], seed=5) as running:
        yield running


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def airflow(work_dir: Path, receiver: Receiver) -> Iterator[AirflowComponents]:
    tmp_path = work_dir
    home = tmp_path / "airflow"
    home.mkdir()
    profiles = tmp_path / "profiles.db"
    write_sqlite(profiles, PROFILE_COUNT)
    port = free_port()
    env = local_executor_env(home, port, ROOT / "dags")
    env.update(
        {
            "AIRFLOW__JOURNEY__RESULTS_BASE": str(tmp_path / "results"),
            "AIRFLOW_CONN_JOURNEY_PROFILES_DB": json.dumps(
                {"conn_type": "sqlite", "host": str(profiles)}
            ),
        }
    )
    for conn_id in ("JOURNEY_PUSH", "JOURNEY_EMAIL"):
        env[f"AIRFLOW_CONN_{conn_id}"] = json.dumps(
            {"conn_type": "custom_action", "host": receiver.url}
        )
    for action_file in (ROOT / "dags" / "actions").glob("*.json"):
        env[f"AIRFLOW_VAR_JOURNEY_ACTION_{action_file.stem.upper()}"] = action_file.read_text()

    components = AirflowComponents(home, env, port)
    try:
        start_local_components(components)
        yield components
    finally:
        components.stop()


def test_connection_form_lists_provider_fields(airflow: AirflowComponents):
    hooks = airflow.request("GET", "/ui/connections/hook_meta")
    ours = next(hook for hook in hooks if hook["connection_type"] == "custom_action")
    assert "calls_per_period" in json.dumps(ours["extra_fields"])
    defaults = [field["value"] for field in ours["extra_fields"].values()]
    assert "***" not in defaults
    assert ours["standard_fields"]["host"]["title"] == "Base URL"
    assert ours["standard_fields"]["port"]["hidden"] is True


def test_journey_triggered_through_rest_api(
    airflow: AirflowComponents, receiver: Receiver, work_dir: Path
):
    tmp_path = work_dir
    airflow.wait_for("DAG parsed", lambda: airflow.request("GET", f"/api/v2/dags/{DAG_ID}"), 180)
    airflow.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run = airflow.request(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}}
    )

    def finished() -> str | None:
        state = airflow.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}")[
            "state"
        ]
        return state if state in ("success", "failed") else None

    state = airflow.wait_for("DAG run finished", finished, RUN_TIMEOUT_SECONDS)
    instances = airflow.request(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances"
    )["task_instances"]
    task_states = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in instances}
    assert state == "success", f"task states: {task_states}; logs in {airflow.home}"

    database = sqlite3.connect(tmp_path / "profiles.db")
    tokens = {
        row[0]
        for row in database.execute(
            "SELECT push_token FROM profiles WHERE marketing_opt_in = 1 AND push_token IS NOT NULL"
        )
    }
    pushes = receiver.requests("/push")
    answered = {r["body"]["token"] for r in pushes if 200 <= r["status"] < 300}
    assert answered == tokens

    # The receiver responds to the first attempt of every key with 503: each push is retried
    # once under the same Idempotency-Key.
    attempts_per_key = Counter(r["headers"]["Idempotency-Key"] for r in pushes)
    assert set(attempts_per_key.values()) == {2}
