"""run_action on bad input: each problem is reported clearly and the rest of the batch goes on.

The runner is called without Airflow, against pytest-httpserver on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from journey_servers import base_url, endpoint, http_server
from pytest_httpserver import HTTPServer

from airflow_provider_journey.actions import ActionDefinition, parse_action
from airflow_provider_journey.audiences import Audience, FileAudience, ListAudience
from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.exceptions import (
    ActionDefinitionError,
    ActionRunFailedError,
    AudienceError,
)
from airflow_provider_journey.outcomes import list_parts, read_outcome_records
from airflow_provider_journey.runner import (
    MAX_LOGGED_ERRORS,
    RunIdentity,
    RunOptions,
    check_run_failure,
    run_action,
)

TOKEN_MAPPING = {"token": "{{ profile.token }}"}
ONE_PROFILE = [{"profile_id": "p1", "token": "t"}]


@pytest.fixture()
def server() -> Iterator[HTTPServer]:
    with http_server() as running:
        running.expect_request("/notify").respond_with_json({"id": "m-1"})
        yield running


def notify_action(**fields: Any) -> ActionDefinition:
    """Return a POST /notify action with one required parameter ``token``; no retries."""
    document: dict[str, Any] = {
        "name": "notify",
        "connection_id": "notify_api",
        "method": "POST",
        "path": "/notify",
        "parameters": {"token": {"type": "string"}},
        "payload": {"token": "{{ token }}"},
        "response": {"keep": ["id"]},
        "max_retries": 0,
    }
    document.update(fields)
    return parse_action(document, source="test action")


def run(
    action: ActionDefinition,
    settings: EndpointSettings,
    audience: Audience | Sequence[Mapping[str, Any]],
    results_dir: Path,
    *,
    parameters: Mapping[str, Any] = TOKEN_MAPPING,
    try_number: int = 1,
) -> dict[str, Any]:
    if not isinstance(audience, Audience):
        audience = ListAudience(audience)
    return run_action(
        action,
        settings,
        audience,
        parameters,
        identity=RunIdentity("bad_input", "run-1", "notify_task", try_number=try_number),
        run_context={},
        results_dir=results_dir,
        options=RunOptions(concurrency=4),
    )


def outcomes_by_id(results_dir: Path) -> dict[str | None, dict[str, Any]]:
    return {record["profile_id"]: record for record in read_outcome_records(results_dir)}


def sent_tokens(server: HTTPServer) -> list[str]:
    return sorted(json.loads(request.data)["token"] for request, _ in server.log)


# --- definition errors ------------------------------------------------------------------


def test_unknown_template_parameter_is_definition_error() -> None:
    with pytest.raises(ActionDefinitionError) as raised:
        notify_action(payload={"token": "{{ tokn }}"})

    assert "payload.token" in str(raised.value)
    assert "'tokn'" in str(raised.value)


def test_unknown_mapped_parameter_sends_nothing(server: HTTPServer, tmp_path: Path) -> None:
    profiles = [{"profile_id": "p1", "token": "t1"}]
    mapping = {**TOKEN_MAPPING, "tokn": "{{ profile.token }}"}

    with pytest.raises(ActionDefinitionError) as raised:
        run(notify_action(), endpoint(base_url(server)), profiles, tmp_path, parameters=mapping)

    assert "mapping.tokn" in str(raised.value)
    assert server.log == []


# --- per-profile errors: that profile is invalid, the others are sent -------------------


def test_missing_required_parameter_invalidates_one_profile(
    server: HTTPServer, tmp_path: Path
) -> None:
    profiles = [
        {"profile_id": "p1", "token": "t1"},
        {"profile_id": "p2"},
        {"profile_id": "p3", "token": "t3"},
    ]

    summary = run(notify_action(), endpoint(base_url(server)), profiles, tmp_path)

    outcomes = outcomes_by_id(tmp_path)
    assert outcomes["p2"]["status"] == "invalid"
    assert "p2" in outcomes["p2"]["error"]
    assert "parameters.token" in outcomes["p2"]["error"]
    assert sent_tokens(server) == ["t1", "t3"]
    assert summary["counts"]["succeeded"] == 2


def test_path_escaping_host_invalidates_profile(server: HTTPServer, tmp_path: Path) -> None:
    action = notify_action(
        path="/notify/{{ segment }}",
        parameters={"token": {"type": "string"}, "segment": {"type": "string"}},
    )
    server.expect_request("/notify/inbox").respond_with_json({"id": "m-2"})
    profiles = [
        {"profile_id": "p1", "token": "t1", "segment": "inbox"},
        {"profile_id": "p2", "token": "t2", "segment": "../../admin"},
        {"profile_id": "p3", "token": "t3", "segment": "%2e%2e/admin"},
    ]
    mapping = {**TOKEN_MAPPING, "segment": "{{ profile.segment }}"}

    run(action, endpoint(base_url(server)), profiles, tmp_path, parameters=mapping)

    outcomes = outcomes_by_id(tmp_path)
    assert outcomes["p2"]["status"] == "invalid"
    assert "path" in outcomes["p2"]["error"]
    assert outcomes["p3"]["status"] == "invalid"
    assert [request.path for request, _ in server.log] == ["/notify/inbox"]


def test_header_line_break_invalidates_profile(server: HTTPServer, tmp_path: Path) -> None:
    action = notify_action(
        headers={"X-Customer": "{{ name }}"},
        parameters={"token": {"type": "string"}, "name": {"type": "string"}},
    )
    profiles = [
        {"profile_id": "p1", "token": "t1", "name": "Ann"},
        {"profile_id": "p2", "token": "t2", "name": "Bob\r\nX-Injected: yes"},
        {"profile_id": "p3", "token": "t3", "name": "Cy\nX-Injected: yes"},
    ]
    mapping = {**TOKEN_MAPPING, "name": "{{ profile.name }}"}

    run(action, endpoint(base_url(server)), profiles, tmp_path, parameters=mapping)

    outcomes = outcomes_by_id(tmp_path)
    assert outcomes["p2"]["status"] == "invalid"
    assert "headers.X-Customer" in outcomes["p2"]["error"]
    assert outcomes["p3"]["status"] == "invalid"
    assert sent_tokens(server) == ["t1"]
    assert all("X-Injected" not in request.headers for request, _ in server.log)


def test_profile_without_id_invalid_others_sent(server: HTTPServer, tmp_path: Path) -> None:
    profiles = [
        {"profile_id": "p1", "token": "t1"},
        {"token": "t2"},
        {"profile_id": "", "token": "t3"},
        {"profile_id": "p4", "token": "t4"},
    ]

    summary = run(notify_action(), endpoint(base_url(server)), profiles, tmp_path)

    invalid = [r for r in read_outcome_records(tmp_path) if r["status"] == "invalid"]
    assert [record["row"] for record in invalid] == [2, 3]
    assert "row 2" in invalid[0]["error"]
    assert sent_tokens(server) == ["t1", "t4"]
    assert summary["counts"]["invalid"] == 2


# --- responses ---------------------------------------------------------------------------


def test_non_json_response_succeeds_without_fields(tmp_path: Path) -> None:
    with http_server() as server:
        server.expect_request("/notify").respond_with_data("queued", content_type="text/plain")

        run(notify_action(), endpoint(base_url(server)), ONE_PROFILE, tmp_path)

    outcome = outcomes_by_id(tmp_path)["p1"]
    assert outcome["status"] == "succeeded"
    assert outcome["response"] is None
    assert "not JSON" in outcome["error"]


def test_non_json_error_response_keeps_excerpt(tmp_path: Path) -> None:
    with http_server() as server:
        server.expect_request("/notify").respond_with_data("<html>Bad gateway</html>", status=400)

        run(notify_action(), endpoint(base_url(server)), ONE_PROFILE, tmp_path)

    outcome = outcomes_by_id(tmp_path)["p1"]
    assert outcome["status"] == "failed"
    assert outcome["status_code"] == "http_400"
    assert "Bad gateway" in outcome["error"]


def test_oversized_response_is_reported_not_kept(tmp_path: Path) -> None:
    action = notify_action(max_response_bytes=1000)
    with http_server() as server:
        server.expect_request("/notify").respond_with_json({"id": "m-1", "pad": "x" * 5000})

        run(action, endpoint(base_url(server)), [{"profile_id": "p1", "token": "t"}], tmp_path)

    outcome = outcomes_by_id(tmp_path)["p1"]
    assert outcome["status"] == "succeeded"
    assert outcome["response"] is None
    assert "over 1000 bytes" in outcome["error"]
    assert len(json.dumps(outcome)) < 2000


# --- the endpoint or the audience cannot be reached -------------------------------------


def test_connection_refused_fails_run(tmp_path: Path, unused_port: int) -> None:
    profiles = [{"profile_id": f"p{i}", "token": f"t{i}"} for i in range(3)]
    settings = endpoint(f"http://127.0.0.1:{unused_port}", conn_id="refusing_api")

    summary = run(notify_action(connection_id="refusing_api"), settings, profiles, tmp_path)

    outcomes = list(read_outcome_records(tmp_path))
    assert [record["status"] for record in outcomes] == ["failed"] * 3
    assert "connection refused" in outcomes[0]["error"]
    with pytest.raises(ActionRunFailedError) as raised:
        check_run_failure("notify", summary, RunOptions())
    assert "no call succeeded" in str(raised.value)
    assert "No call reached the endpoint" in str(raised.value)
    assert "notify" in str(raised.value)
    assert str(tmp_path) in str(raised.value)


def test_missing_audience_file_names_path(server: HTTPServer, tmp_path: Path) -> None:
    missing = tmp_path / "audiences" / "no-such-file.csv"

    with pytest.raises(AudienceError) as raised:
        run(notify_action(), endpoint(base_url(server)), FileAudience(missing), tmp_path / "out")

    assert str(missing) in str(raised.value)
    assert "not found" in str(raised.value)
    assert server.log == []


# --- resume: a second try of the same task -------------------------------------------------


def test_second_try_skips_final_outcomes(server: HTTPServer, tmp_path: Path) -> None:
    profiles = [{"profile_id": f"p{i}", "token": f"t{i}"} for i in range(4)]
    settings = endpoint(base_url(server))
    run(notify_action(), settings, profiles, tmp_path)
    server.clear_log()

    summary = run(notify_action(), settings, profiles, tmp_path, try_number=2)

    assert server.log == []
    assert summary["counts"]["skipped"] == 4
    assert summary["counts"]["succeeded"] == 0


def test_second_try_after_half_written_line(server: HTTPServer, tmp_path: Path) -> None:
    profiles = [{"profile_id": f"p{i}", "token": f"t{i}"} for i in range(4)]
    settings = endpoint(base_url(server))
    run(notify_action(), settings, profiles, tmp_path)
    first_keys = {
        json.loads(request.data)["token"]: request.headers["Idempotency-Key"]
        for request, _ in server.log
    }
    # A crash while writing: the last outcome line lost its second half.
    part = Path(str(list_parts(tmp_path)[0]))
    lines = part.read_bytes().splitlines(keepends=True)
    cut_id = json.loads(lines[-1])["profile_id"]
    part.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    server.clear_log()

    summary = run(notify_action(), settings, profiles, tmp_path, try_number=2)

    resent = [json.loads(request.data)["token"] for request, _ in server.log]
    assert resent == [f"t{cut_id[1:]}"]
    assert server.log[0][0].headers["Idempotency-Key"] == first_keys[resent[0]]
    assert summary["counts"]["skipped"] == 3
    assert summary["counts"]["succeeded"] == 1


def test_second_try_skips_invalid_and_failed(tmp_path: Path, unused_port: int) -> None:
    profiles = [{"profile_id": "p1", "token": "t1"}, {"profile_id": "p2"}]
    settings = endpoint(f"http://127.0.0.1:{unused_port}", conn_id="refusing_api")
    action = notify_action(connection_id="refusing_api")
    run(action, settings, profiles, tmp_path)

    summary = run(action, settings, profiles, tmp_path, try_number=2)

    assert summary["counts"]["skipped"] == 2
    check_run_failure("notify", summary, RunOptions())


# --- logging --------------------------------------------------------------------------------


def test_first_unsuccessful_profiles_logged_with_ids(
    server: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    profiles = [{"profile_id": f"p{number:02d}"} for number in range(15)]

    with caplog.at_level(logging.WARNING, logger="airflow_provider_journey.runner"):
        run(notify_action(), endpoint(base_url(server)), profiles, tmp_path)

    lines = [record.getMessage() for record in caplog.records]
    per_profile = [line for line in lines if ", profile p" in line]
    assert len(per_profile) == MAX_LOGGED_ERRORS
    assert "profile p00 (row 1): invalid (not sent): " in per_profile[0]
    assert "parameters.token" in per_profile[0]
    assert any("further unsuccessful profiles are counted" in line for line in lines)


@pytest.mark.parametrize(
    ("status_codes", "hint"),
    [
        ({"http_409": 3}, "answered every call with an error"),
        ({"http_401": 2, "http_403": 1}, "rejected the credentials"),
        ({"timedout": 1, "internalError": 2}, "No call reached the endpoint"),
    ],
)
def test_no_success_hint_follows_status_codes(status_codes: dict[str, int], hint: str) -> None:
    summary = {
        "counts": {"failed": sum(status_codes.values()), "succeeded": 0},
        "status_codes": status_codes,
        "error_rate": 1.0,
        "results_uri": "/results/notify",
    }
    with pytest.raises(ActionRunFailedError, match=hint):
        check_run_failure("notify", summary, RunOptions())
