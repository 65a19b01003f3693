"""A DAG whose actions use every authentication mode against an echoing server.

The secret-leak test runs it with dag.test(); connections come from AIRFLOW_CONN_*.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_journey import CustomActionOperator

MODES = ("basic", "api_key_header", "api_key_query", "bearer", "token")
PROFILES = [
    {"profile_id": "p-ok", "target": "ok"},
    {"profile_id": "p-401", "target": "echo401"},
    {"profile_id": "p-500", "target": "echo500"},
]


def action(mode: str) -> dict[str, object]:
    return {
        "name": f"leak_{mode}",
        "connection_id": f"leak_{mode}",
        "method": "POST",
        "path": "/{{ target }}",
        "parameters": {"target": {"type": "string"}},
        "payload": {"target": "{{ target }}"},
        "max_retries": 1,
        "response": {"keep": ["ok"]},
        "error_response": {"keep": ["echo"]},
    }


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def secret_leak_journey() -> None:
    for mode in MODES:
        CustomActionOperator(
            task_id=f"send_{mode}",
            action=action(mode),
            audience=PROFILES,
            parameters={"target": "{{ profile.target }}"},
            # Two of three profiles fail on purpose, so the task fails and raises.
            error_rate_threshold=0.5,
        )


secret_leak_journey()
