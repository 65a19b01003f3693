"""The embedded default: sharded action, in-memory capping, one process (dag.test()).

The shards run one after the other in the test process, so they share the process's
in-memory limiter. The receiver's arrival times show the cap held and was used.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from journey_dag_runs import run_dag, task_states, write_dag_file, xcom_value

from airflow_provider_journey.receiver import Receiver

PROFILE_COUNT = 200
SHARDS = 2
CALLS_PER_PERIOD = 40
PERIOD_SECONDS = 2.0

DAG_BODY = """
from airflow.sdk import DAG, task

from airflow_provider_journey.operators.custom_action import CustomActionOperator
from airflow_provider_journey.sharding import merge_shard_summaries, shard_numbers

ACTION = {{
    "name": "notify",
    "connection_id": "inmemory_capped",
    "method": "POST",
    "path": "/notify",
    "parameters": {{"profile": {{"type": "string"}}}},
    "payload": {{"profile": "{{{{ profile }}}}"}},
}}

with DAG("inmemory_capping", schedule=None, catchup=False):
    send = CustomActionOperator.partial(
        task_id="send",
        action=ACTION,
        audience={audience!r},
        parameters={{"profile": "{{{{ profile_id }}}}"}},
        concurrency=16,
        shard_count={shards},
    ).expand(shard=shard_numbers({shards}))

    @task
    def summarize(summaries):
        return merge_shard_summaries(summaries)

    summarize(send.output)
"""


def max_in_window(times: list[float], period: float) -> int:
    """Return the largest number of times within any window of ``period`` seconds."""
    ordered = sorted(times)
    largest = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= period:
            start += 1
        largest = max(largest, end - start + 1)
    return largest


@pytest.fixture(scope="module")
def capped_run(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Any:
    """Run the sharded DAG once for all tests of this module."""
    folder = tmp_path_factory.mktemp("inmemory")
    audience = folder / "audience.jsonl"
    with audience.open("w", encoding="utf-8") as stream:
        for number in range(PROFILE_COUNT):
            stream.write(json.dumps({"profile_id": f"p{number:04d}"}) + "\n")

    extra = {"calls_per_period": CALLS_PER_PERIOD, "period_seconds": PERIOD_SECONDS}
    with Receiver(seed=1) as receiver, pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_INMEMORY_CAPPED",
            json.dumps({"conn_type": "custom_action", "host": receiver.url, "extra": extra}),
        )
        patch.setenv("AIRFLOW__JOURNEY__RESULTS_BASE", str(folder / "results"))
        body = DAG_BODY.format(audience=str(audience), shards=SHARDS)
        write_dag_file(folder, "inmemory_capping", body)
        dag_run = run_dag(folder, "inmemory_capping")
        return dag_run, receiver.requests("/notify")


def test_inmemory_sharded_run_succeeds(capped_run: Any) -> None:
    dag_run, _ = capped_run
    assert task_states(dag_run) == {"send": "success", "summarize": "success"}


def test_inmemory_shards_send_each_profile_once(capped_run: Any) -> None:
    _, requests = capped_run
    per_profile = Counter(request["body"]["profile"] for request in requests)
    assert len(per_profile) == PROFILE_COUNT
    assert set(per_profile.values()) == {1}


def test_inmemory_window_never_over_cap(capped_run: Any) -> None:
    _, requests = capped_run
    arrivals = [request["received_at"] for request in requests]
    assert max_in_window(arrivals, PERIOD_SECONDS) <= CALLS_PER_PERIOD


def test_inmemory_run_uses_most_of_cap(capped_run: Any) -> None:
    _, requests = capped_run
    arrivals = sorted(request["received_at"] for request in requests)
    windows = (arrivals[-1] - arrivals[0] + PERIOD_SECONDS) / PERIOD_SECONDS
    share = len(arrivals) / (CALLS_PER_PERIOD * windows)
    print(f"in-memory sharded run used {share:.1%} of the cap")
    assert share >= 0.9


def test_inmemory_summaries_merge(capped_run: Any) -> None:
    dag_run, _ = capped_run
    merged = xcom_value(dag_run, "summarize")
    assert merged["counts"]["succeeded"] == PROFILE_COUNT
