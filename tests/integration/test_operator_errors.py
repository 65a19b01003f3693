"""CustomActionOperator errors and action sources through real DAG runs (dag.test()).

One DAG has a task per case, so a single run covers them all; a second DAG renders
its templates as native objects. The endpoint is pytest-httpserver on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journey_dag_runs import failures, run_dag, task_states, write_dag_file, xcom_value
from journey_servers import base_url, http_server
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

NOTIFY_ACTION = {
    "name": "notify",
    "connection_id": "notify_api",
    "method": "POST",
    "path": "/notify",
    "parameters": {"token": {"type": "string"}},
    "payload": {"token": "{{ token }}"},
    "response": {"keep": ["id"]},
    "max_retries": 0,
}

CODES_ACTION = {
    "name": "codes",
    "connection_id": "notify_api",
    "method": "POST",
    "path": "/codes",
    "headers": {"X-Code": "{{ code }}", "X-Account": "{{ account }}"},
    "parameters": {"code": {"type": "string"}, "account": {"type": "string"}},
    "payload": {"code": "{{ code }}", "account": "{{ account }}"},
    "max_retries": 0,
}

# The action Variable of the first task: a comma is missing at the end of line 3.
BROKEN_ACTION_JSON = (
    '{\n  "name": "broken",\n  "connection_id": "notify_api"\n  "method": "POST"\n}'
)

ERRORS_DAG = """
import pendulum
from airflow.sdk import DAG

from airflow_provider_journey import CustomActionOperator

PROFILES = [{"profile_id": f"p{i}", "token": f"t{i}"} for i in range(4)]
ONE_BAD = [{"profile_id": "p0", "token": "bad"}, *PROFILES[1:]]
MAPPING = {"token": "{{ profile.token }}"}

with DAG(
    "operator_errors",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={"on_failure_callback": record_failure},
):
    CustomActionOperator(
        task_id="invalid_json_variable", action="broken", audience=PROFILES, parameters=MAPPING
    )
    CustomActionOperator(
        task_id="missing_connection",
        action={**INLINE_ACTION, "connection_id": "no_such_endpoint"},
        audience=PROFILES,
        parameters=MAPPING,
    )
    CustomActionOperator(
        task_id="threshold_crossed",
        action=INLINE_ACTION,
        audience=ONE_BAD,
        parameters=MAPPING,
        error_rate_threshold=0.1,
    )
    CustomActionOperator(
        task_id="inline_action", action=INLINE_ACTION, audience=PROFILES, parameters=MAPPING
    )
    CustomActionOperator(
        task_id="file_action", action=ACTION_FILE, audience=PROFILES, parameters=MAPPING
    )
"""

NATIVE_DAG = """
import pendulum
from airflow.sdk import DAG, task

from airflow_provider_journey import CustomActionOperator

MAPPING = {"code": "{{ profile.code }}", "account": "{{ profile.account }}"}

with DAG(
    "native_strings",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    render_template_as_native_obj=True,
    params={"code": "007", "account": "123345"},
    default_args={"on_failure_callback": record_failure},
):

    @task
    def make_profiles():
        return [{"profile_id": "from-xcom", "code": "007", "account": "123345"}]

    from_xcom = CustomActionOperator(
        task_id="from_xcom",
        action=CODES_ACTION,
        audience="{{ ti.xcom_pull(task_ids='make_profiles') }}",
        parameters=MAPPING,
    )
    make_profiles() >> from_xcom
    CustomActionOperator(
        task_id="from_params",
        action=CODES_ACTION,
        audience=[
            {
                "profile_id": "from-params",
                "code": "{{ params.code }}",
                "account": "{{ params.account }}",
            }
        ],
        parameters=MAPPING,
    )
"""


def respond(request: Request) -> Response:
    """Return 400 for the token ``bad`` and 200 with a message id otherwise."""
    body = json.loads(request.data)
    if body.get("token") == "bad":
        return Response('{"error": "unknown token"}', status=400, content_type="application/json")
    return Response('{"id": "m-1"}', status=200, content_type="application/json")


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with http_server() as running:
        running.expect_request("/notify").respond_with_handler(respond)
        running.expect_request("/codes").respond_with_json({"id": "c-1"})
        yield running


@pytest.fixture(scope="module")
def dag_folder(
    tmp_path_factory: pytest.TempPathFactory, server: HTTPServer, airflow_db: Path
) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("operator_errors")
    action_file = folder / "notify.json"
    action_file.write_text(json.dumps(NOTIFY_ACTION), encoding="utf-8")
    constants = (
        f"INLINE_ACTION = {NOTIFY_ACTION!r}\n"
        f"CODES_ACTION = {CODES_ACTION!r}\n"
        f"ACTION_FILE = {str(action_file)!r}\n"
    )
    write_dag_file(folder, "operator_errors", constants + ERRORS_DAG)
    write_dag_file(folder, "native_strings", constants + NATIVE_DAG)

    with pytest.MonkeyPatch.context() as patch:
        connection = {"conn_type": "custom_action", "host": base_url(server)}
        patch.setenv("AIRFLOW_CONN_NOTIFY_API", json.dumps(connection))
        patch.setenv("AIRFLOW_VAR_JOURNEY_ACTION_BROKEN", BROKEN_ACTION_JSON)
        patch.setenv("AIRFLOW__JOURNEY__RESULTS_BASE", str(folder / "results"))
        yield folder


@pytest.fixture(scope="module")
def errors_run(dag_folder: Path) -> Any:
    return run_dag(dag_folder, "operator_errors")


@pytest.fixture(scope="module")
def native_run(dag_folder: Path, server: HTTPServer) -> Any:
    server.clear_log()
    dag_run = run_dag(dag_folder, "native_strings")
    return dag_run


# --- failing tasks -------------------------------------------------------------------------


def test_invalid_variable_json_fails_task(errors_run: Any, dag_folder: Path) -> None:
    failure = failures(dag_folder)["invalid_json_variable"]

    assert task_states(errors_run)["invalid_json_variable"] == "failed"
    assert failure["type"] == "ActionDefinitionError"
    assert "journey_action_broken" in failure["message"]
    assert "line 4 column 3" in failure["message"]


def test_missing_connection_says_how_to_add(errors_run: Any, dag_folder: Path) -> None:
    failure = failures(dag_folder)["missing_connection"]

    assert task_states(errors_run)["missing_connection"] == "failed"
    assert "no_such_endpoint" in failure["message"]
    assert "AIRFLOW_CONN_NO_SUCH_ENDPOINT" in failure["message"]
    assert "was not found" in failure["message"]
    assert "connection_id of action" in failure["message"]
    assert "airflow connections add" in failure["message"]


def test_threshold_crossed_fails_task(errors_run: Any, dag_folder: Path) -> None:
    failure = failures(dag_folder)["threshold_crossed"]

    assert task_states(errors_run)["threshold_crossed"] == "failed"
    assert failure["type"] == "ActionRunFailedError"
    assert "error_rate_threshold" in failure["message"]


def test_threshold_crossed_keeps_summary_in_xcom(errors_run: Any) -> None:
    summary = xcom_value(errors_run, "threshold_crossed")

    assert summary is not None
    assert summary["counts"]["failed"] == 1
    assert summary["counts"]["succeeded"] == 3


# --- action sources -----------------------------------------------------------------------


def test_inline_action_dict_succeeds(errors_run: Any) -> None:
    summary = xcom_value(errors_run, "inline_action")

    assert task_states(errors_run)["inline_action"] == "success"
    assert summary["counts"]["succeeded"] == 4


def test_json_file_action_succeeds(errors_run: Any) -> None:
    summary = xcom_value(errors_run, "file_action")

    assert task_states(errors_run)["file_action"] == "success"
    assert summary["counts"]["succeeded"] == 4


# --- templates rendered as native objects ---------------------------------------------


@pytest.mark.parametrize("task_id", ["from_xcom", "from_params"])
def test_native_rendering_keeps_strings(native_run: Any, server: HTTPServer, task_id: str) -> None:
    states = task_states(native_run)
    requests = [request for request, _ in server.log if request.path == "/codes"]
    summary = xcom_value(native_run, task_id)

    assert states[task_id] == "success"
    assert summary["counts"]["succeeded"] == 1
    assert len(requests) == 2
    for request in requests:
        body = json.loads(request.data)
        assert body["code"] == "007"
        assert body["account"] == "123345"
        assert request.headers["X-Code"] == "007"
        assert request.headers["X-Account"] == "123345"
