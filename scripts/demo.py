"""Run the welcome journey once, end to end, on the embedded defaults.

The script sets up a local Airflow home (SQLite) in .demo/ and generates 10,000 demo
profiles. It loads the example actions as Variables and starts the local receiver on
127.0.0.1. Then it runs ``welcome_journey`` as a real DAG run recorded in the metadata
database, prints each action's summary and where the outcomes are, and stops the
receiver.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
AIRFLOW_HOME = DEMO / "airflow"
PROFILES_DB = DEMO / "profiles.db"
RESULTS = DEMO / "results"
PROFILE_COUNT = 10_000
DAG_ID = "welcome_journey"
LOGICAL_DATE = "2026-12-01"
DEFAULT_RECEIVER_PORT = 8765

# The receiver behaves like a real push service on a bad day: some tokens are gone
# (410, not retried, so those profiles take the fallback email), some calls are
# throttled (429 with Retry-After) or hit a busy server (503, retried).
RECEIVER_RULES = [
    "/push:410:0.03",
    "/push:429:0.02:retry_after=1",
    "/push:503:0.03",
    "/email:503:0.01",
]


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    port = _receiver_port()
    env = _airflow_env()

    _step("Initialising the Airflow metadata database (SQLite) in .demo/airflow")
    _run([_airflow(), "db", "migrate"], env)

    _step(f"Generating {PROFILE_COUNT:,} demo profiles into .demo/profiles.db")
    _run(
        [
            sys.executable,
            "-m",
            "airflow_provider_journey.demo.profiles",
            "--db",
            str(PROFILES_DB),
            "--count",
            str(PROFILE_COUNT),
        ],
        env,
    )

    _write_env_file(env)
    _step("Adding the connections and loading the example actions as Airflow Variables")
    _add_connections(port, env)
    _load_actions(env)

    _step(f"Starting the local receiver on http://127.0.0.1:{port}")
    receiver = _start_receiver(port, env)
    try:
        _step(
            f"Running {DAG_ID} (logical date {LOGICAL_DATE}); "
            "the task log goes to .demo/dag-run.log"
        )
        ok = _run_dag(env)
        _print_results(port)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        print("Receiver stopped.")
    return 0 if ok else 1


def _airflow_env() -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(AIRFLOW_HOME),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__JOURNEY__RESULTS_BASE": str(RESULTS),
        }
    )
    return env


def _write_env_file(env: dict[str, str]) -> None:
    """Write the demo's Airflow settings as shell exports, for the README's UI steps."""
    names = [name for name in sorted(env) if name.startswith("AIRFLOW")]
    names = [name for name in names if env[name] != os.environ.get(name)]
    lines = [f"export {name}={shlex.quote(env[name])}" for name in names]
    lines.append("export AIRFLOW__CORE__PARALLELISM=4")
    (DEMO / "airflow.env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _add_connections(port: int, env: dict[str, str]) -> None:
    """Store the demo's connections in the metadata database, where the UI shows them."""
    connections = {
        "journey_profiles_db": {"conn_type": "sqlite", "host": str(PROFILES_DB)},
        "journey_push": _endpoint(port, calls_per_period=2000),
        "journey_email": _endpoint(port, calls_per_period=1000),
    }
    connections_file = DEMO / "connections.json"
    connections_file.write_text(json.dumps(connections, indent=2), encoding="utf-8")
    _run([_airflow(), "connections", "import", "--overwrite", str(connections_file)], env)


def _endpoint(port: int, *, calls_per_period: int) -> dict[str, Any]:
    extra = {"calls_per_period": calls_per_period, "period_seconds": 1, "timeout": 10}
    return {
        "conn_type": "custom_action",
        "host": f"http://127.0.0.1:{port}",
        "extra": json.dumps(extra),
    }


def _load_actions(env: dict[str, str]) -> None:
    variables = {
        f"journey_action_{path.stem}": path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "dags" / "actions").glob("*.json"))
    }
    variables_file = DEMO / "variables.json"
    variables_file.write_text(json.dumps(variables, indent=2), encoding="utf-8")
    _run([_airflow(), "variables", "import", str(variables_file)], env)


def _start_receiver(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_journey.receiver",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--seed",
        "7",
        "--record",
        str(DEMO / "receiver-requests.jsonl"),
    ]
    for rule in RECEIVER_RULES:
        command += ["--rule", rule]
    log = (DEMO / "receiver.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("The receiver exited at start; see .demo/receiver.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("The receiver did not start listening within 30 s; see .demo/receiver.log")


def _run_dag(env: dict[str, str]) -> bool:
    log_path = DEMO / "dag-run.log"
    with log_path.open("wb") as log:
        result = subprocess.run(
            [_airflow(), "dags", "test", DAG_ID, LOGICAL_DATE],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        print(f"The DAG run failed (exit {result.returncode}); the last lines of {log_path}:")
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-40:]))
        return False
    return True


def _print_results(port: int) -> None:
    database = sqlite3.connect(AIRFLOW_HOME / "airflow.db")
    row = database.execute(
        "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
    ).fetchone()
    if row is None:
        print("No DAG run was recorded.")
        return
    run_id, state = row
    print(f"\nDAG run {run_id}: {state} (recorded in {AIRFLOW_HOME / 'airflow.db'})")
    profiles = sqlite3.connect(PROFILES_DB)
    opted_in = profiles.execute("SELECT count(*) FROM profiles WHERE marketing_opt_in = 1")
    print(
        f"The audience query read {opted_in.fetchone()[0]:,} of the {PROFILE_COUNT:,} "
        "profiles: those who opted in to marketing."
    )
    profiles.close()
    for task_id, value in database.execute(
        "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value' "
        "ORDER BY task_id",
        (DAG_ID, run_id),
    ):
        summary = _decode_xcom(value)
        if isinstance(summary, dict) and "counts" in summary and "action" in summary:
            _print_summary(task_id, summary)

    stats = json.load(
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_receiver/stats", timeout=10)
    )
    print(f"\nThe receiver got: {json.dumps(stats)}")
    print(f"Requests it recorded: {DEMO / 'receiver-requests.jsonl'}")


def _print_summary(task_id: str, summary: dict[str, Any]) -> None:
    counts = {status: count for status, count in summary["counts"].items() if count}
    print(f"\n{task_id} (action {summary['action']}): {summary['total']} profiles")
    print(f"  outcomes:  {counts}")
    print(f"  latency:   {summary.get('latency_ms')}")
    print(f"  results:   {summary['results_uri']}")


def _decode_xcom(value: Any) -> Any:
    while isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return value


def _receiver_port() -> int:
    """Return 8765 when it is free, so the stored connections stay valid; else a free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", DEFAULT_RECEIVER_PORT))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        raise SystemExit(f"Command failed (exit {result.returncode}): {' '.join(command[:4])}")


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
