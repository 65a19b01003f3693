"""Tests of action definitions: parsing, validation problems and the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_journey.actions import (
    ActionDefinition,
    action_json_schema,
    load_action_file,
    parse_action,
    parse_action_json,
)
from airflow_provider_journey.exceptions import ActionDefinitionError

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "action-schema.json"


def push_action(**changes: Any) -> dict[str, Any]:
    """A valid push action; keyword arguments replace (or, with None, remove) top-level fields."""
    document: dict[str, Any] = {
        "name": "send_push",
        "description": "Send a push notification",
        "connection_id": "push_service",
        "method": "POST",
        "path": "/v1/users/{{ user_id }}/push",
        "headers": {"X-Campaign": "{{ campaign }}"},
        "query": {"lang": "{{ language }}"},
        "parameters": {
            "user_id": {"type": "string"},
            "campaign": {"type": "string", "default": "welcome"},
            "language": {"type": "string", "required": False, "nullable": True},
            "token": {"type": "string"},
            "points": {"type": "integer", "default": 10},
        },
        "payload": {"message": {"token": "{{ token }}", "points": "{{ points }}"}},
        "response": {"keep": ["id", "data.message_id"]},
        "error_response": {"keep": ["error.code"]},
        "timeout_seconds": 10,
        "max_retries": 2,
        "drop_nulls_in_lists": False,
        "max_response_bytes": 65536,
    }
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def problems_of(document: Any) -> list[str]:
    """Parse a document that must be invalid and return its problems."""
    with pytest.raises(ActionDefinitionError) as caught:
        parse_action(document, source="test")
    return caught.value.problems


# --- valid documents -------------------------------------------------------------------------


def test_parse_action_builds_definition() -> None:
    action = parse_action(push_action(), source="test")

    assert isinstance(action, ActionDefinition)
    assert action.name == "send_push"
    assert action.connection_id == "push_service"
    assert action.method == "POST"
    assert action.headers == {"X-Campaign": "{{ campaign }}"}
    assert action.response_fields == ("id", "data.message_id")
    assert action.error_response_fields == ("error.code",)
    assert action.timeout_seconds == 10.0
    assert action.max_retries == 2
    assert action.max_response_bytes == 65536
    assert action.source == "test"


def test_parse_action_reads_parameter_specs() -> None:
    action = parse_action(push_action(), source="test")

    campaign = action.parameters["campaign"]
    language = action.parameters["language"]
    assert campaign.has_default
    assert campaign.default == "welcome"
    assert not language.required
    assert language.nullable
    assert not language.has_default


def test_parse_action_applies_defaults() -> None:
    document = {
        "name": "ping",
        "connection_id": "crm",
    }

    action = parse_action(document, source="test")

    assert action.method == "POST"
    assert action.path == ""
    assert action.payload is None
    assert action.drop_nulls_in_lists is False
    assert action.timeout_seconds is None
    assert action.max_retries is None


def test_parse_action_accepts_attribute_access() -> None:
    document = push_action(
        parameters={"user": {"type": "object"}},
        path="/users/{{ user.id }}",
        headers=None,
        query=None,
        payload={"name": "{{ user.name | title }}"},
    )

    action = parse_action(document, source="test")

    assert set(action.parameters) == {"user"}


def test_parse_action_json_parses_text() -> None:
    action = parse_action_json(json.dumps(push_action()), source="push.json")

    assert action.name == "send_push"


def test_load_action_file_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "push.json"
    document = push_action(description="Envoie une notification: café ☕")
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    action = load_action_file(path)

    assert action.description == "Envoie une notification: café ☕"
    assert action.source == str(path)


# --- invalid documents -----------------------------------------------------------------------


def test_invalid_json_names_source_line_and_column() -> None:
    text = '{\n  "name": "send_push",\n  "connection_id": }'

    with pytest.raises(ActionDefinitionError) as caught:
        parse_action_json(text, source="actions/push.json")

    problem = caught.value.problems[0]
    assert "actions/push.json" in problem
    assert "line 3 column 20" in problem


def test_document_not_an_object_is_rejected() -> None:
    problems = problems_of(["not", "an", "object"])

    assert problems == ["the action must be a JSON object, got list"]


def test_every_problem_is_reported_at_once() -> None:
    document = push_action(
        method="FETCH", timeout_seconds=0, name="9lives", path="//evil.example/{{ user_id }}"
    )

    problems = problems_of(document)

    fields = [problem.split(":")[0] for problem in problems]
    assert fields == ["name", "method", "path", "timeout_seconds"]


def test_unknown_top_level_key_is_rejected() -> None:
    problems = problems_of(push_action(url="https://example.com"))

    assert problems[0].startswith("url: unknown field")


def test_missing_name_is_rejected() -> None:
    problems = problems_of(push_action(name=None))

    assert problems == ["name: missing; give the action a name such as send_push"]


@pytest.mark.parametrize("name", ["send-push", "9lives", "send push", "", 42])
def test_invalid_name_is_rejected(name: Any) -> None:
    problems = problems_of(push_action(name=name))

    assert problems[0].startswith("name: ")


def test_missing_connection_id_is_rejected() -> None:
    problems = problems_of(push_action(connection_id=None))

    assert problems == ["connection_id: missing; name the endpoint connection to call"]


def test_connection_id_of_wrong_type_is_rejected() -> None:
    problems = problems_of(push_action(connection_id=12))

    assert problems == ["connection_id: must be a non-empty string, got number"]


def test_unsupported_method_is_rejected() -> None:
    problems = problems_of(push_action(method="FETCH"))

    assert problems == [
        "method: 'FETCH' is not supported; use one of POST, PUT, PATCH, GET, DELETE"
    ]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_payload_on_method_without_body_is_rejected(method: str) -> None:
    problems = problems_of(push_action(method=method))

    assert problems == [f"payload: a {method} request has no body; remove the payload"]


def test_get_without_payload_is_valid() -> None:
    document = push_action(
        method="GET",
        payload=None,
        parameters={"user_id": {"type": "string"}},
        headers=None,
        query=None,
    )

    action = parse_action(document, source="test")

    assert action.method == "GET"


def test_unknown_parameter_in_payload_names_field_path() -> None:
    document = push_action(payload={"message": {"token": "{{ tokn }}", "points": "{{ points }}"}})

    problems = problems_of(document)

    assert "payload.message.token: unknown parameter 'tokn'" in problems[0]


def test_unknown_parameter_in_list_item_names_index() -> None:
    document = push_action(payload={"token": "{{ token }}", "n": ["{{ points }}", "{{ pionts }}"]})

    problems = problems_of(document)

    assert problems[0].startswith("payload.n[1]: unknown parameter 'pionts'")


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("path", {"path": "/users/{{ uid }}"}),
        ("headers.X-Campaign", {"headers": {"X-Campaign": "{{ campain }}"}}),
        ("query.lang", {"query": {"lang": "{{ lang }}"}}),
    ],
)
def test_unknown_parameter_is_found_in_every_template(field: str, changes: dict[str, Any]) -> None:
    problems = problems_of(push_action(**changes))

    assert any(problem.startswith(f"{field}: unknown parameter") for problem in problems)


def test_unknown_parameter_type_lists_valid_types() -> None:
    document = push_action()
    document["parameters"]["points"] = {"type": "int"}

    problems = problems_of(document)

    assert problems[0].startswith("parameters.points.type: 'int' is not a type; use one of string,")


def test_missing_parameter_type_is_rejected() -> None:
    document = push_action()
    document["parameters"]["points"] = {"required": True}

    problems = problems_of(document)

    assert problems[0].startswith("parameters.points.type: missing")


def test_parameter_with_invalid_spec_is_not_reported_as_unknown() -> None:
    document = push_action()
    document["parameters"]["points"] = {"type": "int"}

    problems = problems_of(document)

    assert len(problems) == 1


def test_unknown_parameter_spec_key_is_rejected() -> None:
    document = push_action()
    document["parameters"]["points"]["optional"] = True

    problems = problems_of(document)

    assert problems[0].startswith("parameters.points.optional: unknown field")


def test_parameter_flag_of_wrong_type_is_rejected() -> None:
    document = push_action()
    document["parameters"]["points"]["required"] = "yes"

    problems = problems_of(document)

    assert problems == ["parameters.points.required: must be true or false, got string"]


@pytest.mark.parametrize("name", ["first-name", "true", "loop", "1st"])
def test_invalid_parameter_name_is_rejected(name: str) -> None:
    document = push_action(payload={"token": "{{ token }}", "points": "{{ points }}"})
    document["parameters"][name] = {"type": "string"}

    problems = problems_of(document)

    assert problems[0].startswith(f"parameters.{name}: {name!r} is not a valid parameter name")


@pytest.mark.parametrize(
    ("type_", "default"),
    [
        ("integer", "10"),
        ("integer", 1.5),
        ("integer", True),
        ("decimal", "9.5"),
        ("boolean", "true"),
        ("string", 7),
        ("date", "01/05/2024"),
        ("dateTime", "2024-05-01T09:30:00"),
        ("object", [1]),
        ("listInteger", [1, "2"]),
        ("listString", "a,b"),
    ],
)
def test_default_not_matching_type_is_rejected(type_: str, default: Any) -> None:
    document = push_action()
    document["parameters"]["points"] = {"type": type_, "default": default}

    problems = problems_of(document)

    assert problems[0].startswith("parameters.points.default: ")


@pytest.mark.parametrize(
    ("type_", "default"),
    [
        ("integer", 10),
        ("decimal", 9.5),
        ("decimal", 3),
        ("boolean", False),
        ("string", ""),
        ("date", "2024-05-01"),
        ("dateTime", "2024-05-01T09:30:00+02:00"),
        ("object", {"a": 1}),
        ("listInteger", [1, None, 3]),
        ("listAny", [1, "a", None]),
    ],
)
def test_default_matching_type_is_accepted(type_: str, default: Any) -> None:
    document = push_action()
    document["parameters"]["points"] = {"type": type_, "default": default}

    action = parse_action(document, source="test")

    assert action.parameters["points"].default == default


def test_null_default_needs_nullable() -> None:
    document = push_action()
    document["parameters"]["points"] = {"type": "integer", "default": None}

    problems = problems_of(document)

    assert problems == ["parameters.points.default: null is only allowed when nullable is true"]


@pytest.mark.parametrize("name", ["X Campaign", "X-Campaign:", "Café", ""])
def test_invalid_header_name_is_rejected(name: str) -> None:
    document = push_action(headers={name: "{{ campaign }}"})

    problems = problems_of(document)

    assert problems[0].startswith(f"headers.{name}: {name!r} is not a valid header name")


def test_header_value_with_line_break_is_rejected() -> None:
    document = push_action(headers={"X-Campaign": "{{ campaign }}\r\nX-Injected: 1"})

    problems = problems_of(document)

    assert problems == ["headers.X-Campaign: the value contains a line break or control character"]


@pytest.mark.parametrize("name", ["Idempotency-Key", "content-length", "Host"])
def test_reserved_header_is_rejected(name: str) -> None:
    document = push_action(headers={"X-Campaign": "{{ campaign }}", name: "x"})

    problems = problems_of(document)

    assert problems == [f"headers.{name}: set by the provider; remove it from the action"]


def test_header_value_of_wrong_type_is_rejected() -> None:
    document = push_action(headers={"X-Campaign": "{{ campaign }}", "X-Version": 2})

    problems = problems_of(document)

    assert problems == ["headers.X-Version: must be a string, got number"]


@pytest.mark.parametrize(
    "path",
    ["https://evil.example/v1", "//evil.example/v1", "http:/x", "mailto:someone", " //evil"],
)
def test_path_leaving_the_host_is_rejected(path: str) -> None:
    problems = problems_of(
        push_action(path=path, parameters=None, headers=None, query=None, payload=None)
    )

    assert problems[0].startswith("path: must")


def test_path_with_backslash_is_rejected() -> None:
    document = push_action(path="/users\\{{ user_id }}")

    problems = problems_of(document)

    assert problems == ["path: must not contain a backslash"]


def test_template_syntax_error_names_field() -> None:
    document = push_action(payload={"message": {"token": "{{ token ", "points": "{{ points }}"}})

    problems = problems_of(document)

    assert problems[0].startswith("payload.message.token: template syntax error at line 1")


def test_unused_parameter_is_reported() -> None:
    document = push_action()
    document["parameters"]["coupon"] = {"type": "string"}

    problems = problems_of(document)

    assert problems[0].startswith("parameters.coupon: declared but unused")


def test_parameter_used_only_in_path_counts_as_used() -> None:
    document = push_action()

    action = parse_action(document, source="test")

    assert "user_id" in action.parameters


@pytest.mark.parametrize("value", [0, 301, "10", True, float("nan")])
def test_timeout_out_of_range_is_rejected(value: Any) -> None:
    problems = problems_of(push_action(timeout_seconds=value))

    assert problems[0].startswith("timeout_seconds: ")


@pytest.mark.parametrize("value", [-1, 11, 2.5, True])
def test_max_retries_out_of_range_is_rejected(value: Any) -> None:
    problems = problems_of(push_action(max_retries=value))

    assert problems[0].startswith("max_retries: ")


def test_max_response_bytes_below_one_is_rejected() -> None:
    problems = problems_of(push_action(max_response_bytes=0))

    assert problems == ["max_response_bytes: 0 must be a whole number of 1 or more"]


def test_drop_nulls_in_lists_of_wrong_type_is_rejected() -> None:
    problems = problems_of(push_action(drop_nulls_in_lists="yes"))

    assert problems == ["drop_nulls_in_lists: must be true or false, got string"]


@pytest.mark.parametrize("path", ["", "data..id", "data. id", 3])
def test_invalid_keep_path_is_rejected(path: Any) -> None:
    problems = problems_of(push_action(response={"keep": [path]}))

    assert problems[0].startswith("response.keep[0]: ")


def test_unknown_response_key_is_rejected() -> None:
    problems = problems_of(push_action(error_response={"keep": [], "status": 400}))

    assert problems == ["error_response.status: unknown field; the only field is keep"]


def test_problem_list_names_action_in_message() -> None:
    with pytest.raises(ActionDefinitionError) as caught:
        parse_action(push_action(method="FETCH"), source="test")

    assert "Action 'send_push' is invalid" in str(caught.value)


def test_problem_list_names_source_without_valid_name() -> None:
    with pytest.raises(ActionDefinitionError) as caught:
        parse_action(push_action(name=None), source="actions/push.json")

    assert caught.value.action == "actions/push.json"


# --- JSON Schema -----------------------------------------------------------------------------


def test_committed_schema_matches_function() -> None:
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    assert committed == action_json_schema()


def test_schema_accepts_valid_action() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(action_json_schema())

    errors = list(validator.iter_errors(push_action()))

    assert errors == []


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "FETCH"},
        {"name": "send-push"},
        {"connection_id": None},
        {"path": "//evil.example"},
        {"path": "https://evil.example"},
        {"method": "GET"},
        {"timeout_seconds": 301},
        {"url": "https://example.com"},
        {"headers": {"Bad Header": "x"}},
        {"parameters": {"token": {"type": "int"}}},
    ],
)
def test_schema_rejects_invalid_action(changes: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(action_json_schema())

    errors = list(validator.iter_errors(push_action(**changes)))

    assert errors != []


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema = pytest.importorskip("jsonschema")

    jsonschema.Draft202012Validator.check_schema(action_json_schema())
