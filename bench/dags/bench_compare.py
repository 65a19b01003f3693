"""Three DAGs that send the same push to the same audience, the way users do it today.

``bench/run.py`` runs each through ``dag.test()`` and times it. The audience size comes
from ``BENCH_PROFILES`` (default 1,000); the server is the ``bench_http`` connection
for the first two and the ``journey_push`` endpoint connection for the third.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG, task

BENCH_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH_DIR))

from workloads import ACTION_FILE, PARAMETERS, profile_record  # noqa: E402

from airflow_provider_journey import CustomActionOperator  # noqa: E402

PROFILES = int(os.environ.get("BENCH_PROFILES", "1000"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def push_body(profile: dict[str, Any]) -> str:
    """Return the push payload the action renders, built by hand as a user would."""
    title = "Welkom" if profile["locale"] == "nl" else "Welcome"
    return json.dumps(
        {
            "token": profile["push_token"],
            "message": {
                "title": f"{title}, {profile['first_name']}!",
                "body": f"{profile['loyalty_points']} loyalty points are waiting for you.",
            },
            "data": {
                "points": profile["loyalty_points"],
                "locale": profile["locale"],
                "campaign": "welcome",
            },
        }
    )


with DAG("bench_http_operator_expand", schedule=None, start_date=START, catchup=False):
    HttpOperator.partial(
        task_id="push",
        http_conn_id="bench_http",
        endpoint="/push",
        method="POST",
        headers={"Content-Type": "application/json"},
        log_response=False,
    ).expand(data=[push_body(profile_record(index)) for index in range(PROFILES)])


with DAG("bench_python_requests_loop", schedule=None, start_date=START, catchup=False):

    @task
    def push_all() -> int:
        """Send one POST per profile with a requests session, one after the other."""
        import requests
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection("bench_http")
        url = f"http://{connection.host}:{connection.port}/push"
        sent = 0
        with requests.Session() as session:
            for index in range(PROFILES):
                body = push_body(profile_record(index))
                response = session.post(
                    url, data=body, headers={"Content-Type": "application/json"}, timeout=30
                )
                response.raise_for_status()
                sent += 1
        return sent

    push_all()


with DAG("bench_custom_action_operator", schedule=None, start_date=START, catchup=False):
    CustomActionOperator(
        task_id="push",
        action=str(ACTION_FILE),
        audience=[profile_record(index) for index in range(PROFILES)],
        parameters=PARAMETERS,
    )


with DAG("bench_empty_task", schedule=None, start_date=START, catchup=False):

    @task
    def do_nothing() -> None:
        """Return at once: the run measures what dag.test() costs for one task."""

    do_nothing()
