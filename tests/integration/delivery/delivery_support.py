"""Helpers of the delivery tests: a receiver in its own process, Redis checks, record reading."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_journey.actions import ActionDefinition, parse_action

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_START_COMMAND = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


def require_redis() -> None:
    """Fail in CI (CI=true) and skip elsewhere when Redis does not listen on 127.0.0.1:6379."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2):
            return
    except OSError as error:
        message = (
            f"Redis is not running on {REDIS_HOST}:{REDIS_PORT} ({error}). Start it with: "
            f"{REDIS_START_COMMAND}"
        )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def notify_action(**fields: Any) -> ActionDefinition:
    """Return a POST /notify action that sends the profile id and group of each profile."""
    document: dict[str, Any] = {
        "name": "notify",
        "connection_id": "notify_api",
        "method": "POST",
        "path": "/notify",
        "parameters": {"profile": {"type": "string"}, "group": {"type": "string"}},
        "payload": {"profile": "{{ profile }}", "group": "{{ group }}"},
    }
    document.update(fields)
    return parse_action(document, source="delivery test action")


NOTIFY_MAPPING = {"profile": "{{ profile_id }}", "group": "{{ profile.group }}"}


@contextmanager
def receiver_process(
    record_path: Path, rules: Sequence[Mapping[str, Any]], *, seed: int, delay_ms: str = "0"
) -> Iterator[str]:
    """Run ``python -m airflow_provider_journey.receiver`` on a free port; yield its base URL.

    A process of its own keeps the receiver off the test's GIL. Every request is
    appended to ``record_path``. The receiver is stopped by its PID.
    """
    command = [
        sys.executable,
        "-m",
        "airflow_provider_journey.receiver",
        "--port",
        "0",
        "--record",
        str(record_path),
        "--seed",
        str(seed),
        "--delay-ms",
        delay_ms,
        "--max-records",
        "1",
        "--log-level",
        "WARNING",
    ]
    for rule in rules:
        command += ["--rule", json.dumps(rule)]
    log_file = (record_path.parent / "receiver.log").open("wb")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log_file, start_new_session=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"The receiver did not start; see {log_file.name}")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log_file.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Return the JSON objects of a JSON Lines file."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def max_in_window(times: Sequence[float], period: float) -> int:
    """Return the largest number of ``times`` inside any closed window of ``period`` seconds."""
    ordered = sorted(times)
    largest = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] > period:
            start += 1
        largest = max(largest, end - start + 1)
    return largest
