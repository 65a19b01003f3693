"""Airflow components started one by one on 127.0.0.1 for end-to-end tests.

Each component runs in its own process group and is stopped by PID: SIGTERM first,
SIGKILL after 30 s. Logs go to ``<AIRFLOW_HOME>/<name>.log``.
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
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class AirflowComponents:
    """Airflow components started one by one, stopped by process group."""

    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home = home
        self.env = env
        self.port = port
        self.processes: list[subprocess.Popen[bytes]] = []
        self.token: str | None = None

    def command(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True
        )
        if done.returncode != 0:
            pytest.fail(f"airflow {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        log = (self.home / f"{name}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def wait_for(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    pytest.fail(f"an Airflow component exited early; logs are in {self.home}")
            try:
                result = check()
                if result:
                    return result
            except (urllib.error.URLError, ConnectionError, OSError) as error:
                last_error = error
            time.sleep(1)
        pytest.fail(
            f"{what} not reached within {timeout:.0f} s ({last_error}); logs in {self.home}"
        )

    def log_in(self) -> None:
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        password = json.loads(passwords.read_text())["admin"]
        self.token = self.request(
            "POST", "/auth/token", {"username": "admin", "password": password}
        )["access_token"]


def local_executor_env(home: Path, port: int, dags_folder: Path) -> dict[str, str]:
    """Return an environment for components on SQLite with the LocalExecutor.

    Every AIRFLOW* variable of the test session is left out, so the components use only
    what is set here and what the caller adds (connections, Variables).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "journey-e2e-test-only",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        }
    )
    return env


def start_local_components(components: AirflowComponents) -> None:
    """Migrate the database, start api-server, scheduler and dag-processor, and log in."""
    components.command("db", "migrate")
    port = str(components.port)
    components.start("api-server", "api-server", "--host", "127.0.0.1", "--port", port)
    components.start("scheduler", "scheduler", "--skip-serve-logs")
    components.start("dag-processor", "dag-processor")
    components.wait_for(
        "api-server health", lambda: components.request("GET", "/api/v2/monitor/health"), 120
    )
    components.log_in()
