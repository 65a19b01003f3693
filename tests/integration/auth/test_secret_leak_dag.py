"""No secret in task logs, XCom, outcomes, rendered fields or raised errors.

A DAG sends with every authentication mode to a server on 127.0.0.1 that answers
some calls 401 and 500 with bodies echoing the request (headers, query, body).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pendulum
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

HERE = Path(__file__).resolve().parent
TOKEN = "tok-leak-SECRET-0987"
SECRETS = {
    "basic": "basic-SECRET-4321",
    "api_key_header": "hkey-SECRET-5555",
    "api_key_query": "qkey/SECRET+6666",
    "bearer": "bearer-SECRET-7777",
    "token": "tokenpw-SECRET-8888",
}


def every_form(values: list[str]) -> set[str]:
    forms = set()
    for value in values:
        forms |= {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    forms.add(base64.b64encode(f"bot:{SECRETS['basic']}".encode()).decode())
    return forms


@Request.application
def echo_app(request: Request) -> Response:
    if request.path == "/token":
        return Response(json.dumps({"access_token": TOKEN}), content_type="application/json")
    echo = {
        "headers": dict(request.headers),
        "query": request.query_string.decode(),
        "body": request.get_data(as_text=True),
    }
    status = {"/ok": 200, "/echo401": 401, "/echo500": 500}.get(request.path, 404)
    document = {"ok": status == 200, "echo": echo}
    return Response(json.dumps(document), status=status, content_type="application/json")


@pytest.fixture()
def echo_server() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, echo_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def connections(url: str) -> dict[str, dict[str, Any]]:
    return {
        "basic": {"login": "bot", "password": SECRETS["basic"], "extra": {"auth_type": "basic"}},
        "api_key_header": {
            "password": SECRETS["api_key_header"],
            "extra": {"auth_type": "api_key", "api_key_name": "X-Api-Key"},
        },
        "api_key_query": {
            "password": SECRETS["api_key_query"],
            "extra": {"auth_type": "api_key", "api_key_name": "key", "api_key_in": "query"},
        },
        "bearer": {"password": SECRETS["bearer"], "extra": {"auth_type": "bearer"}},
        "token": {
            "login": "svc",
            "password": SECRETS["token"],
            "extra": {
                "auth_type": "token_endpoint",
                "token_url": "/token",
                "token_body_format": "json",
                "token_body": {"user": "$login", "password": "$password"},
                "token_path": "access_token",
            },
        },
    }


def run_leak_dag(echo_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for mode, fields in connections(echo_server).items():
        connection = {"conn_type": "custom_action", "host": echo_server, **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_LEAK_{mode.upper()}", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW__JOURNEY__RESULTS_BASE", str(tmp_path / "results"))

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=str(HERE / "dags" / "secret_leak_journey.py"))
    assert bag.import_errors == {}
    # dag.test() needs the DAG serialized in the metadata database first.
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    dag = bag.get_dag("secret_leak_journey")
    return dag.test(logical_date=pendulum.now("UTC"))


def test_secrets_appear_nowhere(
    echo_server: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    airflow_db: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: Any,
) -> None:
    leak_run = run_leak_dag(echo_server, monkeypatch, tmp_path)
    captured = capfd.readouterr()
    log_files = [path for path in (airflow_db / "logs").rglob("*") if path.is_file()]
    places = {
        "stdout and stderr": captured.out + captured.err,
        "log records": caplog.text,
        "log files": "".join(path.read_text(errors="replace") for path in log_files),
        "outcomes": "".join(path.read_text() for path in (tmp_path / "results").rglob("*.jsonl")),
    }
    database = sqlite3.connect(airflow_db / "airflow.db")
    run_id = leak_run.run_id
    places["xcom"] = repr(
        database.execute("SELECT value FROM xcom WHERE run_id = ?", (run_id,)).fetchall()
    )
    places["rendered fields"] = repr(
        database.execute(
            "SELECT rendered_fields FROM rendered_task_instance_fields WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    )

    # The run really happened: the echo server answered and tasks failed and raised.
    assert "http_401" in places["outcomes"]
    assert "***" in places["outcomes"]
    assert "ActionRunFailedError" in places["stdout and stderr"] + places["log files"]
    assert "leak_token" in places["xcom"]

    for form in every_form([*SECRETS.values(), TOKEN]):
        for place, text in places.items():
            assert form not in text, f"{form!r} found in {place}"
