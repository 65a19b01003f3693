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
