"""The trigger_journey example action against Airflow's own api-server on 127.0.0.1.

The endpoint connection fetches a token from ``/auth/token`` (token_endpoint auth) and
the action starts runs of another DAG with ``POST /api/v2/dags/{dag_id}/dagRuns``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_journey.audiences import ListAudience
from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.loading import load_action
from airflow_provider_journey.runner import RunIdentity, run_action

ROOT = Path(__file__).resolve().parents[3]
TARGET_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def next_journey():
    @task
    def enter():
        return "entered"

    enter()


next_journey()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ApiServer:
    """Airflow's api-server on 127.0.0.1, started and stopped by PID."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def password(self) -> str:
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        value: str = json.loads(passwords.read_text())["admin"]
        return value

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def token(self) -> str:
        body = {"username": "admin", "password": self.password}
        value: str = self.call("POST", "/auth/token", body)["access_token"]
        return value


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("api-server")
    dags = home / "dags"
    dags.mkdir()
    (dags / "next_journey.py").write_text(TARGET_DAG)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "journey-auth-test-only",
        }
    )
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([*airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)

    server = ApiServer(home, port)
    log = (home / "api-server.log").open("wb")
    server.process = subprocess.Popen(
        [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)


def _wait_until_healthy(server: ApiServer) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            pytest.fail(f"the api-server exited early; see {server.home / 'api-server.log'}")
        try:
            server.call("GET", "/api/v2/monitor/health")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(1)
    pytest.fail(f"the api-server was not healthy within 120 s; see {server.home}")


def api_settings(server: ApiServer, password: str) -> EndpointSettings:
    """The journey_airflow_api connection as docs/authentication.md describes it."""
    return EndpointSettings.from_connection_fields(
        "journey_airflow_api",
        host=server.url,
        login="admin",
        password=password,
        extra={
            "auth_type": "token_endpoint",
            "token_url": "/auth/token",
            "token_body_format": "json",
            "token_body": {"username": "$login", "password": "$password"},
            "token_path": "access_token",
        },
    )


def run_trigger(server: ApiServer, tmp_path: Path, password: str, ids: list[str]) -> dict[str, Any]:
    action = load_action(str(ROOT / "dags" / "actions" / "trigger_journey.json"))
    return run_action(
        action,
        api_settings(server, password),
        ListAudience([{"profile_id": profile_id} for profile_id in ids]),
        {
            "target_dag_id": "next_journey",
            "dag_run_id": "welcome__{{ profile_id }}",
            "profile_id": "{{ profile_id }}",
            "source_journey": "{{ run.journey }}",
        },
        identity=RunIdentity("welcome_journey", "manual__1", "jump"),
        run_context={"journey": "welcome_journey", "dag_id": "welcome_journey"},
        results_dir=tmp_path / "results",
    )


def test_trigger_journey_starts_one_run_per_profile(api_server: ApiServer, tmp_path: Path) -> None:
    summary = run_trigger(api_server, tmp_path, api_server.password, ["p1", "p2", "p3"])

    assert summary["counts"]["succeeded"] == 3
    runs = api_server.call("GET", "/api/v2/dags/next_journey/dagRuns", token=api_server.token())[
        "dag_runs"
    ]
    assert {run["dag_run_id"] for run in runs} >= {"welcome__p1", "welcome__p2", "welcome__p3"}
    assert {run["conf"]["source_journey"] for run in runs} == {"welcome_journey"}


def test_trigger_journey_wrong_password_fails_unsent(api_server: ApiServer, tmp_path: Path) -> None:
    summary = run_trigger(api_server, tmp_path, "not-the-password", ["p9"])

    assert summary["counts"]["failed"] == 1
    outcome = json.loads(next((tmp_path / "results").glob("part-*.jsonl")).read_text())
    assert "answered HTTP 401" in outcome["error"]
    assert "not-the-password" not in outcome["error"]
