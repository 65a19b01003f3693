"""End to end on the CeleryExecutor: two workers send a sharded action under one Redis cap.

PostgreSQL (a fresh database per run) stores Airflow's metadata, Redis is the Celery
broker and the capping store, and every component listens on 127.0.0.1 only: the
workers run with ``--skip-serve-logs``. The receiver timestamps every call, and the
test checks the sliding windows from those timestamps.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from airflow_components import AirflowComponents, free_port

from airflow_provider_journey.receiver import Receiver

pytestmark = pytest.mark.e2e

POSTGRES = "postgres@127.0.0.1:5432"
BROKER_DB = 7
CAPPING_DB = 8
PROFILE_COUNT = 900
CALLS_PER_PERIOD = 60
PERIOD_SECONDS = 2
SHARDS = 2
RUN_TIMEOUT_SECONDS = 150
# The receiver stamps a call when it arrives, up to a few milliseconds after the grant.
ARRIVAL_JITTER_SECONDS = 0.05

DAG_TEMPLATE = """
from airflow.sdk import DAG, task

from airflow_provider_journey.operators.custom_action import CustomActionOperator
from airflow_provider_journey.sharding import merge_shard_summaries, shard_numbers

ACTION = {{
    "name": "notify",
    "connection_id": "{conn_id}",
    "method": "POST",
    "path": "/notify",
    "parameters": {{"profile": {{"type": "string"}}}},
    "payload": {{"profile": "{{{{ profile }}}}"}},
}}

with DAG("celery_capping", schedule=None, catchup=False):
    send = CustomActionOperator.partial(
        task_id="send",
        action=ACTION,
        audience="{audience}",
        parameters={{"profile": "{{{{ profile_id }}}}"}},
        concurrency=16,
        shard_count={shards},
    ).expand(shard=shard_numbers({shards}))

    @task
    def summarize(summaries):
        return merge_shard_summaries(summaries)

    summarize(send.output)
"""


def require_services() -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "integration" / "delivery"))
    from delivery_support import require_redis

    require_redis()
    try:
        psycopg2.connect(f"postgresql://{POSTGRES}/postgres").close()
    except psycopg2.OperationalError as error:
        message = f"PostgreSQL is not running on 127.0.0.1:5432 with trust auth: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def admin(statement: str) -> None:
    connection = psycopg2.connect(f"postgresql://{POSTGRES}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver(delay_ms=5, seed=3, max_records=100_000) as running:
        yield running


@pytest.fixture(scope="module")
def celery_airflow(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[AirflowComponents]:
    require_services()
    work = tmp_path_factory.mktemp("celery")
    home = work / "airflow"
    dags = work / "dags"
    home.mkdir()
    dags.mkdir()
    run_key = uuid.uuid4().hex[:12]
    database = f"journey_celery_{run_key}"
    conn_id = f"capped_{run_key}"

    audience = work / "profiles.jsonl"
    with audience.open("w", encoding="utf-8") as lines:
        for index in range(PROFILE_COUNT):
            lines.write(json.dumps({"profile_id": f"c{index:04d}"}) + "\n")
    dag_text = DAG_TEMPLATE.format(conn_id=conn_id, audience=audience, shards=SHARDS)
    (dags / "celery_capping.py").write_text(textwrap.dedent(dag_text), encoding="utf-8")

    port = free_port()
    sql = f"postgresql+psycopg2://{POSTGRES}/{database}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{BROKER_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{POSTGRES}/{database}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "journey-celery-test-only",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__JOURNEY__RESULTS_BASE": str(work / "results"),
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
                {
                    "conn_type": "custom_action",
                    "host": receiver.url,
                    "extra": {
                        "calls_per_period": CALLS_PER_PERIOD,
                        "period_seconds": PERIOD_SECONDS,
                        "redis_url": f"redis://127.0.0.1:6379/{CAPPING_DB}",
                    },
                }
            ),
        }
    )

    admin(f'CREATE DATABASE "{database}"')
    components = AirflowComponents(home, env, port)
    try:
        components.command("db", "migrate")
        components.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        components.start("scheduler", "scheduler", "--skip-serve-logs")
        components.start("dag-processor", "dag-processor")
        for number in (1, 2):
            components.start(
                f"worker-{number}",
                "celery",
                "worker",
                "--concurrency",
                "1",
                "--skip-serve-logs",
                "--celery-hostname",
                f"journey{number}-{run_key}@127.0.0.1",
                extra_env={
                    # Task instances record this name as their hostname.
                    "JOURNEY_TEST_WORKER_NAME": f"worker-{number}",
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_names.worker_name",
                    "PYTHONPATH": os.pathsep.join(
                        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
                    ),
                },
            )
        components.wait_for(
            "api-server health", lambda: components.request("GET", "/api/v2/monitor/health"), 120
        )
        components.log_in()
        yield components
    finally:
        components.stop()
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def celery_run(celery_airflow: AirflowComponents, receiver: Receiver) -> dict[str, Any]:
    dag_id = "celery_capping"
    celery_airflow.wait_for(
        "DAG parsed", lambda: celery_airflow.request("GET", f"/api/v2/dags/{dag_id}"), 120
    )
    celery_airflow.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    run = celery_airflow.request(
        "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {}}
    )
    runs_path = f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"

    def finished() -> str | None:
        state = celery_airflow.request("GET", runs_path)["state"]
        return state if state in ("success", "failed") else None

    state = celery_airflow.wait_for("DAG run finished", finished, RUN_TIMEOUT_SECONDS)
    instances = celery_airflow.request("GET", f"{runs_path}/taskInstances")["task_instances"]
    return {
        "state": state,
        "instances": instances,
        "requests": receiver.requests("/notify"),
        "home": celery_airflow.home,
    }


def max_in_window(times: list[float], period: float) -> int:
    ordered = sorted(times)
    largest = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] > period:
            start += 1
        largest = max(largest, end - start + 1)
    return largest


def test_celery_run_succeeds(celery_run: dict[str, Any]) -> None:
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in celery_run["instances"]}

    assert celery_run["state"] == "success", f"{states}; logs in {celery_run['home']}"


def test_celery_shards_on_both_workers(celery_run: dict[str, Any]) -> None:
    shards = [ti for ti in celery_run["instances"] if ti["task_id"] == "send"]
    hostnames = {ti["hostname"] for ti in shards}

    assert len(shards) == SHARDS
    assert len(hostnames) == 2


def test_celery_every_profile_sent_once(celery_run: dict[str, Any]) -> None:
    profiles = [request["body"]["profile"] for request in celery_run["requests"]]

    assert len(profiles) == PROFILE_COUNT
    assert len(set(profiles)) == PROFILE_COUNT


def test_celery_window_never_over_cap(celery_run: dict[str, Any]) -> None:
    times = [request["received_at"] for request in celery_run["requests"]]
    largest = max_in_window(times, PERIOD_SECONDS - ARRIVAL_JITTER_SECONDS)
    print(f"max calls in one {PERIOD_SECONDS} s window: {largest} (cap {CALLS_PER_PERIOD})")

    assert largest <= CALLS_PER_PERIOD


def test_celery_run_uses_cap(celery_run: dict[str, Any]) -> None:
    times = sorted(request["received_at"] for request in celery_run["requests"])
    # The most the cap allows from the first call to the end of the last call's window.
    windows = (times[-1] - times[0] + PERIOD_SECONDS) / PERIOD_SECONDS
    share = len(times) / (CALLS_PER_PERIOD * windows)
    print(f"share of the cap used: {share:.1%}")

    assert share >= 0.9
