"""The example welcome_journey DAG through dag.test(), against the local receiver."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pendulum
import pytest

from airflow_provider_journey.demo.profiles import write_sqlite
from airflow_provider_journey.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
PROFILE_COUNT = 400


@pytest.fixture()
def receiver():
    rules = [{"path": "/push", "status": 410, "rate": 0.1}]
    with Receiver(rules=rules, seed=11) as running:
        yield running


@pytest.fixture()
def journey_env(monkeypatch, tmp_path, receiver, airflow_db):
    """Connections, Variables and a profiles database for welcome_journey."""
    database = tmp_path / "profiles.db"
    write_sqlite(database, PROFILE_COUNT)
    monkeypatch.setenv(
        "AIRFLOW_CONN_JOURNEY_PROFILES_DB",
        json.dumps({"conn_type": "sqlite", "host": str(database)}),
    )
    for conn_id in ("journey_push", "journey_email"):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps({"conn_type": "custom_action", "host": receiver.url}),
        )
    for action_file in (ROOT / "dags" / "actions").glob("*.json"):
        key = f"AIRFLOW_VAR_JOURNEY_ACTION_{action_file.stem.upper()}"
        monkeypatch.setenv(key, action_file.read_text(encoding="utf-8"))
    monkeypatch.setenv("AIRFLOW__JOURNEY__RESULTS_BASE", str(tmp_path / "results"))
    return database


def opted_in_profiles(database: Path) -> list[dict]:
    import sqlite3

    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    rows = connection.execute("SELECT * FROM profiles WHERE marketing_opt_in = 1").fetchall()
    return [dict(row) for row in rows]


@pytest.fixture()
def journey_run(journey_env):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "welcome_journey.py"))
    assert bag.import_errors == {}
    dag = bag.get_dag("welcome_journey")
    return dag.test(logical_date=pendulum.datetime(2026, 12, 1, tz="UTC"))


def test_journey_run_succeeds(journey_run):
    assert journey_run.state == "success"


def test_push_sent_to_every_profile_with_token(journey_run, journey_env, receiver):
    expected = {p["push_token"] for p in opted_in_profiles(journey_env) if p["push_token"]}
    sent = {record["body"]["token"] for record in receiver.requests("/push")}
    assert sent == expected


def test_email_reaches_profiles_without_token(journey_run, journey_env, receiver):
    without_token = {p["email"] for p in opted_in_profiles(journey_env) if not p["push_token"]}
    emailed = {record["body"]["to"] for record in receiver.requests("/email")}
    assert without_token <= emailed


def test_failed_pushes_get_fallback_email(journey_run, journey_env, receiver):
    by_token = {p["push_token"]: p["email"] for p in opted_in_profiles(journey_env)}
    gone = {by_token[r["body"]["token"]] for r in receiver.requests("/push") if r["status"] == 410}
    fallback = {
        r["body"]["to"]
        for r in receiver.requests("/email")
        if r["body"]["variables"]["reason"] == "push_failed"
    }
    assert gone
    assert fallback == gone


def test_every_push_request_has_valid_shape(journey_run, receiver):
    records = receiver.requests("/push")
    assert all(record["valid"] for record in records)


def test_one_outcome_per_push_profile(journey_run, journey_env, tmp_path):
    parts = list((tmp_path / "results").rglob("push_welcome/part-*.jsonl"))
    ids = [json.loads(line)["profile_id"] for part in parts for line in part.open()]
    with_token = [p for p in opted_in_profiles(journey_env) if p["push_token"]]
    assert Counter(ids).most_common(1)[0][1] == 1
    assert len(ids) == len(with_token)
