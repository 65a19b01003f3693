"""Inputs that broke HTTP calls from Airflow in public bug reports, run as a user meets them.

Each case runs through ``run_action`` or a real DAG run (dag.test()) against servers on
127.0.0.1: the local receiver, pytest-httpserver or a socket that never responds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from journey_dag_runs import failures, run_dag, task_states, write_dag_file, xcom_value
from journey_servers import base_url, endpoint, http_server, silent_server
from werkzeug import Request, Response

from airflow_provider_journey.actions import ActionDefinition, parse_action
from airflow_provider_journey.audiences import Audience, FileAudience, ListAudience
from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.exceptions import AudienceError, EndpointConfigError
from airflow_provider_journey.outcomes import read_outcome_records
from airflow_provider_journey.receiver import Receiver
from airflow_provider_journey.runner import RunIdentity, RunOptions, run_action
from airflow_provider_journey.types import Profile

BIG_AUDIENCE = 5000
TOKEN = "tok-9f8e7d6c5b4a-never-shown"


def action(path: str, parameters: Mapping[str, str], payload: Any, **fields: Any) -> dict[str, Any]:
    """Return an action document for POST ``path`` with string parameters."""
    document = {
        "name": path.strip("/").replace("-", "_"),
        "connection_id": "reports_api",
        "method": "POST",
        "path": path,
        "parameters": {name: {"type": type_} for name, type_ in parameters.items()},
        "payload": payload,
    }
    document.update(fields)
    return document


def run(
    document: Mapping[str, Any],
    settings: EndpointSettings,
    audience: Audience | Sequence[Mapping[str, Any]],
    results_dir: Path,
    parameters: Mapping[str, Any],
    *,
    try_number: int = 1,
    concurrency: int = 8,
) -> dict[str, Any]:
    definition: ActionDefinition = parse_action(document, source="test action")
    if not isinstance(audience, Audience):
        audience = ListAudience(audience)
    return run_action(
        definition,
        settings,
        audience,
        parameters,
        identity=RunIdentity("reports", "run-1", "task", try_number=try_number),
        run_context={},
        results_dir=results_dir,
        options=RunOptions(concurrency=concurrency),
    )


# --- values that look like numbers or JSON stay strings --------------------------------


def test_numeric_looking_strings_sent_unchanged(tmp_path: Path) -> None:
    audience_file = tmp_path / "audience.csv"
    audience_file.write_text("profile_id,code,account\np1,007,123345\n", encoding="utf-8")
    document = action(
        "/codes",
        {"code": "string", "account": "string"},
        {"code": "{{ code }}", "account": "{{ account }}"},
        headers={"X-Code": "{{ code }}", "X-Account": "{{ account }}"},
    )
    mapping = {"code": "{{ profile.code }}", "account": "{{ profile.account }}"}

    with http_server() as server:
        server.expect_request("/codes").respond_with_json({})
        run(
            document,
            endpoint(base_url(server)),
            FileAudience(audience_file),
            tmp_path / "out",
            mapping,
        )
        request = server.log[0][0]

    assert json.loads(request.data) == {"code": "007", "account": "123345"}
    assert request.headers["X-Code"] == "007"
    assert request.headers["X-Account"] == "123345"


def test_json_text_parameter_stays_string(tmp_path: Path) -> None:
    text = '{"title": "foo"}'
    document = action("/posts", {"data": "string"}, {"data": "{{ data }}"})

    with http_server() as server:
        server.expect_request("/posts").respond_with_json({})
        run(
            document,
            endpoint(base_url(server)),
            [{"profile_id": "p1", "data": text}],
            tmp_path,
            {"data": "{{ profile.data }}"},
        )
        request = server.log[0][0]

    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.data) == {"data": text}


# --- connection extras are settings, never headers -------------------------------------


def test_setting_extras_not_sent_as_headers(tmp_path: Path) -> None:
    document = action("/notify", {"token": "string"}, {"token": "{{ token }}"})

    with http_server() as server:
        server.expect_request("/notify").respond_with_json({})
        settings = endpoint(base_url(server), timeout=5, capping_mode="throttle")
        run(document, settings, [{"profile_id": "p1", "token": "t"}], tmp_path, {"token": "t"})
        headers = {name.lower() for name, _ in server.log[0][0].headers.items()}

    assert "timeout" not in headers
    assert "capping_mode" not in headers


def test_unknown_extras_are_reported() -> None:
    with pytest.raises(EndpointConfigError) as raised:
        endpoint("http://127.0.0.1:1", proxies={"https": "http://127.0.0.1:3128"}, api_version=2)

    assert "'proxies'" in str(raised.value)
    assert "'api_version'" in str(raised.value)


# --- retries, Retry-After and timeouts -----------------------------------------------------


def test_429_retry_after_waits(tmp_path: Path) -> None:
    rules = [{"path": "/limited", "status": 429, "first": 1, "retry_after": "2"}]
    document = action("/limited", {"token": "string"}, {"token": "{{ token }}"})

    with Receiver(rules=rules, seed=1) as receiver:
        summary = run(
            document,
            endpoint(receiver.url),
            [{"profile_id": "p1", "token": "t"}],
            tmp_path,
            {"token": "t"},
        )
        arrivals = [record["received_at"] for record in receiver.requests("/limited")]

    assert summary["counts"]["succeeded"] == 1
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 2.0


def test_retries_wait_with_backoff(tmp_path: Path) -> None:
    rules = [{"path": "/flaky", "status": 503, "first": 2}]
    document = action("/flaky", {"token": "string"}, {"token": "{{ token }}"}, max_retries=3)

    with Receiver(rules=rules, seed=1) as receiver:
        summary = run(
            document,
            endpoint(receiver.url),
            [{"profile_id": "p1", "token": "t"}],
            tmp_path,
            {"token": "t"},
        )
        arrivals = [record["received_at"] for record in receiver.requests("/flaky")]

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert summary["counts"]["succeeded"] == 1
    assert len(gaps) == 2
    # The default backoff waits 0.25-0.5 s before the first retry and 0.5-1 s before the second.
    assert gaps[0] >= 0.24
    assert gaps[1] >= 0.49


def test_silent_endpoint_ends_timed_out(tmp_path: Path) -> None:
    document = action("/notify", {"token": "string"}, {"token": "{{ token }}"}, max_retries=0)

    with silent_server() as url:
        settings = endpoint(url, conn_id="silent_api", timeout=1)
        summary = run(
            document, settings, [{"profile_id": "p1", "token": "t"}], tmp_path, {"token": "t"}
        )

    outcome = next(read_outcome_records(tmp_path))
    assert outcome["status"] == "timed_out"
    assert outcome["status_code"] == "timedout"
    assert "timeout of 1 s" in outcome["error"]
    assert summary["counts"]["timed_out"] == 1


def test_default_timeout_is_30_seconds() -> None:
    settings = endpoint("http://127.0.0.1:1")

    assert settings.timeout == 30.0


# --- a restarted or retried send ---------------------------------------------------------


class CrashingAudience(Audience):
    """Profiles p0 to p5 that stop with an error after ``crash_after`` of them, as a killed task."""

    def __init__(self, crash_after: int | None) -> None:
        self.crash_after = crash_after

    def profiles(self) -> Iterator[Profile]:
        for row in range(6):
            if row == self.crash_after:
                raise AudienceError("the worker went away")
            yield Profile(id=f"p{row}", attributes={"token": f"t{row}"}, row=row + 1)


def test_retried_post_skips_answered_profiles(tmp_path: Path) -> None:
    document = action("/notify", {"token": "string"}, {"token": "{{ token }}"})
    mapping = {"token": "{{ profile.token }}"}

    with http_server() as server:
        server.expect_request("/notify").respond_with_json({})
        settings = endpoint(base_url(server))
        with pytest.raises(AudienceError):
            run(document, settings, CrashingAudience(3), tmp_path, mapping, concurrency=1)
        first = [json.loads(request.data)["token"] for request, _ in server.log]
        server.clear_log()
        summary = run(document, settings, CrashingAudience(None), tmp_path, mapping, try_number=2)
        second = sorted(json.loads(request.data)["token"] for request, _ in server.log)

    assert first == ["t0", "t1", "t2"]
    assert second == ["t3", "t4", "t5"]
    assert summary["counts"]["skipped"] == 3


# --- through a DAG run: audience size, large bodies, connection extras ------------------

REPORTS_DAG = """
import pendulum
from airflow.sdk import DAG

from airflow_provider_journey import CustomActionOperator

with DAG(
    "public_reports",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={"on_failure_callback": record_failure},
):
    CustomActionOperator(
        task_id="big_audience",
        action=BULK_ACTION,
        audience=AUDIENCE_FILE,
        parameters={"token": "{{ profile.token }}"},
        concurrency=32,
    )
    CustomActionOperator(
        task_id="large_body",
        action=LARGE_ACTION,
        audience=[{"profile_id": "p1", "token": "t1"}],
        parameters={"token": "{{ profile.token }}"},
    )
    CustomActionOperator(
        task_id="unknown_extras",
        action={**LARGE_ACTION, "connection_id": "extras_api"},
        audience=[{"profile_id": "p1", "token": "t1"}],
        parameters={"token": "{{ profile.token }}"},
    )
"""

BULK_ACTION = action(
    "/bulk", {"token": "string"}, {"token": "{{ token }}"}, connection_id="bulk_api"
)
LARGE_ACTION = action(
    "/large", {"token": "string"}, {"token": "{{ token }}"}, response={"keep": ["id"]}
)


@pytest.fixture(scope="module")
def reports_run(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("public_reports")
    audience_file = folder / "audience.jsonl"
    with audience_file.open("w", encoding="utf-8") as stream:
        for number in range(BIG_AUDIENCE):
            stream.write(json.dumps({"profile_id": f"p{number}", "token": f"t{number}"}) + "\n")
    constants = (
        f"BULK_ACTION = {BULK_ACTION!r}\n"
        f"LARGE_ACTION = {LARGE_ACTION!r}\n"
        f"AUDIENCE_FILE = {str(audience_file)!r}\n"
    )
    write_dag_file(folder, "public_reports", constants + REPORTS_DAG)
    large_body = {"id": "big-1", "items": ["x" * 1000] * 3000}

    with (
        Receiver(seed=1) as receiver,
        http_server() as server,
        pytest.MonkeyPatch.context() as patch,
    ):
        server.expect_request("/large").respond_with_json(large_body)
        for conn_id, url, extra in (
            ("bulk_api", receiver.url, {}),
            ("reports_api", base_url(server), {}),
            (
                "extras_api",
                base_url(server),
                {"proxies": {"https": "http://127.0.0.1:3128"}, "api_version": 2},
            ),
        ):
            connection = {"conn_type": "custom_action", "host": url, "extra": extra}
            patch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        patch.setenv("AIRFLOW__JOURNEY__RESULTS_BASE", str(folder / "results"))
        dag_run = run_dag(folder, "public_reports")
        yield {
            "dag_run": dag_run,
            "folder": folder,
            "bulk_requests": receiver.stats()["total"],
            "large_requests": len(server.log),
        }


def test_big_audience_uses_one_task_instance(reports_run: dict[str, Any]) -> None:
    dag_run = reports_run["dag_run"]
    instances = [ti for ti in dag_run.get_task_instances() if ti.task_id == "big_audience"]
    summary = xcom_value(dag_run, "big_audience")

    assert len(instances) == 1
    assert instances[0].state == "success"
    assert summary["counts"]["succeeded"] == BIG_AUDIENCE
    assert reports_run["bulk_requests"] == BIG_AUDIENCE


def test_large_body_never_reaches_xcom(reports_run: dict[str, Any]) -> None:
    dag_run = reports_run["dag_run"]
    summary = xcom_value(dag_run, "large_body")
    outcomes = list((reports_run["folder"] / "results").rglob("large/part-*.jsonl"))
    record = json.loads(outcomes[0].read_text(encoding="utf-8"))

    assert task_states(dag_run)["large_body"] == "success"
    assert len(json.dumps(summary)) < 20_000
    assert record["response"] is None
    assert "over 1048576 bytes" in record["error"]
    assert len(json.dumps(record)) < 2_000


def test_unknown_extras_fail_task_unsent(reports_run: dict[str, Any]) -> None:
    failure = failures(reports_run["folder"])["unknown_extras"]

    assert task_states(reports_run["dag_run"])["unknown_extras"] == "failed"
    assert "'proxies'" in failure["message"]
    assert "'api_version'" in failure["message"]
    assert reports_run["large_requests"] == 1


# --- a 401 that echoes the request ----------------------------------------------------------

ECHO_DAG = """
import pendulum
from airflow.sdk import DAG

from airflow_provider_journey import CustomActionOperator

with DAG(
    "echo_unauthorized",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={"on_failure_callback": record_failure},
):
    CustomActionOperator(
        task_id="echo_401",
        action=ECHO_ACTION,
        audience=[{"profile_id": "p1", "token": "t1"}, {"profile_id": "p2", "token": "t2"}],
        parameters={"token": "{{ profile.token }}"},
    )
"""

ECHO_ACTION = action(
    "/echo",
    {"token": "string"},
    {"token": "{{ token }}"},
    connection_id="secret_api",
    error_response={"keep": ["headers.Authorization", "error"]},
)


def echo_request(request: Request) -> Response:
    """Respond 401 with a body that repeats every request header, as some services do."""
    body = {"error": "unauthorized", "headers": dict(request.headers)}
    return Response(json.dumps(body), status=401, content_type="application/json")


def test_token_absent_after_echoed_401(
    tmp_path: Path,
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    write_dag_file(tmp_path, "echo_unauthorized", f"ECHO_ACTION = {ECHO_ACTION!r}\n" + ECHO_DAG)
    with http_server() as server:
        server.expect_request("/echo").respond_with_handler(echo_request)
        connection = {
            "conn_type": "custom_action",
            "host": base_url(server),
            "password": TOKEN,
            "extra": {"auth_type": "bearer"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_SECRET_API", json.dumps(connection))
        monkeypatch.setenv("AIRFLOW__JOURNEY__RESULTS_BASE", str(tmp_path / "results"))
        dag_run = run_dag(tmp_path, "echo_unauthorized")
        sent_authorization = server.log[0][0].headers["Authorization"]

    log_text = "".join(capfd.readouterr())
    summary = xcom_value(dag_run, "echo_401")
    outcome_text = "".join(
        part.read_text(encoding="utf-8") for part in (tmp_path / "results").rglob("part-*.jsonl")
    )
    failure = failures(tmp_path)["echo_401"]

    assert sent_authorization == f"Bearer {TOKEN}"
    assert task_states(dag_run)["echo_401"] == "failed"
    assert "echo_401" in log_text
    assert "http_401" in outcome_text
    assert TOKEN not in log_text
    assert TOKEN not in json.dumps(summary)
    assert TOKEN not in failure["message"]
    # Kept error-response fields are checked in test_echoed_token_absent_from_kept_fields.
    errors = [json.loads(line)["error"] for line in outcome_text.splitlines()]
    assert len(errors) == 2
    assert all(TOKEN not in error for error in errors)


def test_echoed_token_absent_from_kept_fields(tmp_path: Path) -> None:
    with http_server() as server:
        server.expect_request("/echo").respond_with_handler(echo_request)
        settings = EndpointSettings.from_connection_fields(
            "secret_api", host=base_url(server), password=TOKEN, extra={"auth_type": "bearer"}
        )
        run(ECHO_ACTION, settings, [{"profile_id": "p1", "token": "t"}], tmp_path, {"token": "t"})

    outcome = next(read_outcome_records(tmp_path))
    assert outcome["status_code"] == "http_401"
    assert TOKEN not in json.dumps(outcome)
