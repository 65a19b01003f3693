"""Tests of per-profile rendering: parameter mapping, coercion and request rendering."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_journey.actions import ActionDefinition, ParameterSpec, parse_action
from airflow_provider_journey.exceptions import ActionDefinitionError, RenderError
from airflow_provider_journey.templating import (
    ActionRenderer,
    ParameterMapping,
    check_rendered_path,
    coerce_value,
    idempotency_key,
)
from airflow_provider_journey.types import PreparedRequest, Profile

RUN = {
    "dag_id": "welcome_journey",
    "run_id": "scheduled__2024-05-01",
    "task_id": "send_push",
    "map_index": -1,
    "logical_date": "2024-05-01T00:00:00+00:00",
    "ds": "2024-05-01",
    "journey": "welcome",
}
NAMESPACE = "welcome_journey/scheduled__2024-05-01/send_push/-1"


def make_action(
    parameters: dict[str, Any],
    *,
    payload: Any = None,
    path: str = "",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "POST",
    drop_nulls_in_lists: bool = False,
) -> ActionDefinition:
    document: dict[str, Any] = {
        "name": "send_push",
        "connection_id": "push_service",
        "method": method,
        "path": path,
        "headers": headers or {},
        "query": query or {},
        "parameters": parameters,
        "drop_nulls_in_lists": drop_nulls_in_lists,
    }
    if payload is not None:
        document["payload"] = payload
    return parse_action(document, source="test")


def make_profile(profile_id: str = "p-1", **attributes: Any) -> Profile:
    return Profile(id=profile_id, attributes=attributes, row=1)


def echo_action(type_: str = "string", **spec: Any) -> ActionDefinition:
    """An action whose payload is {"value": <parameter value>}."""
    return make_action({"value": {"type": type_, **spec}}, payload={"value": "{{ value }}"})


def render(action: ActionDefinition, mapping: dict[str, Any], profile: Profile) -> PreparedRequest:
    values = ParameterMapping(action, mapping).evaluate(profile, RUN)
    renderer = ActionRenderer(action, key_namespace=NAMESPACE)
    return renderer.render(str(profile.id), values)


def sent_payload(request: PreparedRequest) -> Any:
    assert request.body is not None
    return json.loads(request.body.decode("utf-8"))


def evaluate_one(action: ActionDefinition, mapping: dict[str, Any], **attributes: Any) -> Any:
    values = ParameterMapping(action, mapping).evaluate(make_profile(**attributes), RUN)
    return values["value"]


# --- payload encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'She said "hello"',
        "C:\\Users\\ana",
        "line one\nline two\r\n\ttabbed",
        "party 🎉 time",
        "Zoë Ångström, 東京, Ελληνικά",
        '{"title": "foo"}',
        "ends with a backslash \\",
        "nul \x00 and bell \x07",
        "}}{{ not a template",
    ],
)
def test_payload_round_trips_profile_text(text: str) -> None:
    action = echo_action()

    request = render(action, {"value": "{{ profile.text }}"}, make_profile(text=text))

    assert sent_payload(request) == {"value": text}


def test_payload_mixed_text_round_trips_special_characters() -> None:
    action = make_action(
        {"name": {"type": "string"}}, payload={"greeting": 'Hi "{{ name }}" \\o/ \n'}
    )

    request = render(action, {"name": "{{ profile.name }}"}, make_profile(name='Zoë "Z" 🎉'))

    assert sent_payload(request) == {"greeting": 'Hi "Zoë "Z" 🎉" \\o/ \n'}


def test_payload_body_is_compact_utf8() -> None:
    action = echo_action()

    request = render(action, {"value": "{{ profile.text }}"}, make_profile(text="café"))

    assert request.body == '{"value":"café"}'.encode()


@pytest.mark.parametrize("text", ["123345", "007", "1e3", "true", "null"])
def test_payload_number_like_string_stays_string(text: str) -> None:
    action = echo_action()

    request = render(action, {"value": "{{ profile.code }}"}, make_profile(code=text))

    assert sent_payload(request) == {"value": text}


def test_payload_json_looking_string_stays_string() -> None:
    action = echo_action()

    request = render(action, {"value": "{{ profile.raw }}"}, make_profile(raw='{"title": "foo"}'))

    assert sent_payload(request) == {"value": '{"title": "foo"}'}


def test_payload_single_expression_keeps_native_types() -> None:
    action = make_action(
        {
            "points": {"type": "integer"},
            "ratio": {"type": "decimal"},
            "opted_in": {"type": "boolean"},
            "tags": {"type": "listString"},
            "address": {"type": "object"},
        },
        payload={
            "points": "{{ points }}",
            "ratio": "{{ ratio }}",
            "opted_in": "{{ opted_in }}",
            "tags": "{{ tags }}",
            "address": "{{ address }}",
            "city": "{{ address.city }}",
        },
    )
    mapping = {
        "points": "{{ profile.points }}",
        "ratio": "{{ profile.ratio }}",
        "opted_in": "{{ profile.opted_in }}",
        "tags": "{{ profile.tags }}",
        "address": "{{ profile.address }}",
    }
    profile = make_profile(
        points=12, ratio=0.25, opted_in=True, tags=["vip", "new"], address={"city": "Lyon"}
    )

    payload = sent_payload(render(action, mapping, profile))

    assert payload == {
        "points": 12,
        "ratio": 0.25,
        "opted_in": True,
        "tags": ["vip", "new"],
        "address": {"city": "Lyon"},
        "city": "Lyon",
    }


def test_payload_mixed_text_renders_to_string() -> None:
    action = make_action(
        {"points": {"type": "integer"}, "opted_in": {"type": "boolean"}},
        payload={"text": "You have {{ points }} points (opted in: {{ opted_in }})"},
    )
    mapping = {"points": 12, "opted_in": True}

    payload = sent_payload(render(action, mapping, make_profile()))

    assert payload == {"text": "You have 12 points (opted in: true)"}


def test_payload_constants_are_kept() -> None:
    action = make_action(
        {"token": {"type": "string"}},
        payload={"token": "{{ token }}", "priority": "high", "ttl": 3600, "sound": None},
    )

    payload = sent_payload(render(action, {"token": "abc"}, make_profile()))

    assert payload == {"token": "abc", "priority": "high", "ttl": 3600, "sound": None}


def test_payload_keeps_nulls_in_lists_by_default() -> None:
    action = echo_action("listInteger")

    request = render(action, {"value": [1, None, 3]}, make_profile())

    assert sent_payload(request) == {"value": [1, None, 3]}


def test_payload_drops_nulls_in_lists_when_asked() -> None:
    action = make_action(
        {"value": {"type": "listInteger"}},
        payload={"value": "{{ value }}", "fixed": [None, "a"], "keep": None},
        drop_nulls_in_lists=True,
    )

    request = render(action, {"value": [1, None, 3]}, make_profile())

    assert sent_payload(request) == {"value": [1, 3], "fixed": ["a"], "keep": None}


def test_payload_undefined_attribute_names_field() -> None:
    action = make_action({"user": {"type": "object"}}, payload={"user": {"name": "{{ user.nme }}"}})
    values = {"user": {"name": "Ana"}}

    with pytest.raises(RenderError) as caught:
        ActionRenderer(action, key_namespace=NAMESPACE).render("p-1", values)

    assert caught.value.field == "payload.user.name"


def test_payload_missing_parameter_value_names_field() -> None:
    action = echo_action()

    with pytest.raises(RenderError) as caught:
        ActionRenderer(action, key_namespace=NAMESPACE).render("p-1", {})

    assert caught.value.field == "payload.value"


def test_payload_with_nan_in_object_is_render_error() -> None:
    action = echo_action("object")

    with pytest.raises(RenderError) as caught:
        render(action, {"value": "{{ profile.data }}"}, make_profile(data={"x": float("nan")}))

    assert caught.value.field == "payload"


def test_payload_encodes_dates_inside_objects() -> None:
    action = echo_action("object")
    data = {"at": date(2024, 5, 1), "amount": Decimal("9.5")}

    request = render(action, {"value": "{{ profile.data }}"}, make_profile(data=data))

    assert sent_payload(request) == {"value": {"at": "2024-05-01", "amount": 9.5}}


def test_request_without_payload_has_no_body() -> None:
    action = make_action({"user_id": {"type": "string"}}, method="GET", path="/users/{{ user_id }}")

    request = render(action, {"user_id": "{{ profile_id }}"}, make_profile("u1"))

    assert request.body is None


def test_request_without_payload_has_no_content_type() -> None:
    action = make_action({"user_id": {"type": "string"}}, method="GET", path="/users/{{ user_id }}")

    request = render(action, {"user_id": "{{ profile_id }}"}, make_profile("u1"))

    assert "Content-Type" not in request.headers


def test_request_with_payload_has_json_content_type() -> None:
    request = render(echo_action(), {"value": "x"}, make_profile())

    assert request.headers["Content-Type"] == "application/json"


def test_action_content_type_is_kept() -> None:
    action = make_action(
        {"value": {"type": "string"}},
        payload={"value": "{{ value }}"},
        headers={"content-type": "application/vnd.api+json"},
    )

    request = render(action, {"value": "x"}, make_profile())

    assert request.headers == {
        "content-type": "application/vnd.api+json",
        "Idempotency-Key": request.idempotency_key,
    }


# --- mapping context -------------------------------------------------------------------------


def test_mapping_reads_profile_id_run_and_actions() -> None:
    action = echo_action()
    profile = Profile(id="p-9", attributes={}, row=4, actions={"send_push": {"message_id": "m-1"}})
    mapping = {"value": "{{ profile_id }}|{{ run.dag_id }}|{{ actions.send_push.message_id }}"}

    values = ParameterMapping(action, mapping).evaluate(profile, RUN)

    assert values == {"value": "p-9|welcome_journey|m-1"}


def test_mapping_profile_id_is_available_as_profile_id_attribute() -> None:
    action = echo_action()

    value = evaluate_one(action, {"value": "{{ profile.id }}"})

    assert value == "p-1"


def test_mapping_applies_filters() -> None:
    action = echo_action()

    value = evaluate_one(action, {"value": "{{ profile.name | title }}"}, name="ana maría")

    assert value == "Ana María"


def test_mapping_constant_is_coerced() -> None:
    action = echo_action("integer")

    value = evaluate_one(action, {"value": "42"})

    assert value == 42


def test_mapping_runs_in_sandbox() -> None:
    action = echo_action()
    mapping = {"value": "{{ profile.__class__.__mro__ }}"}

    with pytest.raises(RenderError) as caught:
        evaluate_one(action, mapping)

    assert caught.value.field == "parameters.value"


# --- mapping construction --------------------------------------------------------------------


def test_mapping_unknown_parameter_is_definition_error() -> None:
    action = echo_action()

    with pytest.raises(ActionDefinitionError) as caught:
        ParameterMapping(action, {"value": "x", "valeu": "y"})

    assert caught.value.problems[0].startswith("mapping.valeu: 'send_push' has no parameter")
    assert "parameters mapping of the task" in str(caught.value)


def test_mapping_without_required_parameter_is_definition_error() -> None:
    action = echo_action()

    with pytest.raises(ActionDefinitionError) as caught:
        ParameterMapping(action, {})

    assert caught.value.problems[0].startswith("mapping.value: the required parameter")


def test_mapping_may_leave_out_parameter_with_default() -> None:
    action = echo_action("integer", default=10)

    value = evaluate_one(action, {})

    assert value == 10


def test_mapping_unknown_name_is_definition_error() -> None:
    action = echo_action()

    with pytest.raises(ActionDefinitionError) as caught:
        ParameterMapping(action, {"value": "{{ profil.name }}"})

    assert caught.value.problems[0].startswith("mapping.value: unknown name 'profil'")


def test_mapping_syntax_error_is_definition_error() -> None:
    action = echo_action()

    with pytest.raises(ActionDefinitionError) as caught:
        ParameterMapping(action, {"value": "{{ profile.name "})

    assert caught.value.problems[0].startswith("mapping.value: template syntax error")


def test_mapping_invalid_constant_fails_for_profile() -> None:
    action = echo_action("integer")
    mapping = ParameterMapping(action, {"value": "ten"})

    with pytest.raises(RenderError) as caught:
        mapping.evaluate(make_profile(), RUN)

    assert caught.value.field == "parameters.value"


# --- missing values and nulls ----------------------------------------------------------------


def test_undefined_attribute_is_render_error_naming_parameter() -> None:
    action = echo_action()

    with pytest.raises(RenderError) as caught:
        evaluate_one(action, {"value": "{{ profile.push_tokn }}"}, push_token="abc")

    assert caught.value.field == "parameters.value"


def test_undefined_attribute_error_names_missing_attribute() -> None:
    action = echo_action()

    with pytest.raises(RenderError) as caught:
        evaluate_one(action, {"value": "{{ profile.push_tokn }}"}, push_token="abc")

    assert "push_tokn" in str(caught.value)


def test_undefined_attribute_in_filter_is_render_error() -> None:
    action = echo_action()

    with pytest.raises(RenderError) as caught:
        evaluate_one(action, {"value": "{{ profile.nme | title }}"}, name="ana")

    assert caught.value.field == "parameters.value"


def test_optional_parameter_undefined_is_error() -> None:
    action = echo_action(required=False)

    with pytest.raises(RenderError, match="nickname"):
        evaluate_one(action, {"value": "{{ profile.nickname }}"})


def test_nullable_parameter_default_none_filter_is_null() -> None:
    action = echo_action(required=False, nullable=True)

    value = evaluate_one(action, {"value": "{{ profile.nickname | default(none) }}"})

    assert value is None


def test_optional_parameter_unmapped_is_null() -> None:
    action = echo_action(required=False)

    value = evaluate_one(action, {})

    assert value is None


def test_undefined_attribute_with_default_is_error() -> None:
    """A typo in the mapping never sends the parameter's default silently."""
    action = echo_action(required=False, default="friend")

    with pytest.raises(RenderError, match="default\\(none\\)"):
        evaluate_one(action, {"value": "{{ profile.nicknme }}"})


def test_default_none_filter_takes_default() -> None:
    action = echo_action(required=False, default="friend")

    value = evaluate_one(action, {"value": "{{ profile.nickname | default(none) }}"})

    assert value == "friend"


def test_optional_parameter_missing_renders_null_in_payload() -> None:
    action = echo_action(required=False)

    request = render(action, {}, make_profile())

    assert sent_payload(request) == {"value": None}


def test_null_value_is_kept_when_nullable() -> None:
    action = echo_action(nullable=True)

    value = evaluate_one(action, {"value": "{{ profile.nickname }}"}, nickname=None)

    assert value is None


def test_null_value_is_rejected_when_not_nullable() -> None:
    action = echo_action()

    with pytest.raises(RenderError) as caught:
        evaluate_one(action, {"value": "{{ profile.nickname }}"}, nickname=None)

    assert "not nullable" in str(caught.value)


def test_null_value_takes_default_when_not_nullable() -> None:
    action = echo_action(default="friend")

    value = evaluate_one(action, {"value": "{{ profile.nickname }}"}, nickname=None)

    assert value == "friend"


def test_null_items_are_kept_in_lists() -> None:
    action = echo_action("listString")

    value = evaluate_one(action, {"value": "{{ profile.tags }}"}, tags=["a", None])

    assert value == ["a", None]


# --- coercion --------------------------------------------------------------------------------

UTC = timezone.utc
PARIS_SUMMER = timezone(timedelta(hours=2))

COERCIONS: list[tuple[str, Any, Any]] = [
    ("string", "ana", "ana"),
    ("string", "007", "007"),
    ("string", 42, "42"),
    ("string", 9.5, "9.5"),
    ("string", Decimal("9.50"), "9.50"),
    ("integer", 42, 42),
    ("integer", "42", 42),
    ("integer", " -7 ", -7),
    ("integer", "007", 7),
    ("integer", 42.0, 42),
    ("decimal", 9.5, 9.5),
    ("decimal", 3, 3.0),
    ("decimal", Decimal("9.25"), 9.25),
    ("decimal", "9.5", 9.5),
    ("decimal", "-1e3", -1000.0),
    ("boolean", True, True),
    ("boolean", "true", True),
    ("boolean", "FALSE", False),
    ("boolean", "Yes", True),
    ("boolean", "no", False),
    ("boolean", "1", True),
    ("boolean", "0", False),
    ("boolean", 1, True),
    ("boolean", 0, False),
    ("dateTime", datetime(2024, 5, 1, 9, 30, tzinfo=UTC), "2024-05-01T09:30:00+00:00"),
    ("dateTime", "2024-05-01T09:30:00Z", "2024-05-01T09:30:00+00:00"),
    ("dateTime", "2024-05-01T09:30:00+02:00", "2024-05-01T09:30:00+02:00"),
    (
        "dateTime",
        datetime(2024, 5, 1, 9, 30, tzinfo=PARIS_SUMMER),
        "2024-05-01T09:30:00+02:00",
    ),
    ("date", date(2024, 5, 1), "2024-05-01"),
    ("date", "2024-05-01", "2024-05-01"),
    ("object", {"a": 1}, {"a": 1}),
    ("listString", ["a", 1], ["a", "1"]),
    ("listString", ("a", "b"), ["a", "b"]),
    ("listInteger", ["1", 2], [1, 2]),
    ("listDecimal", ["1.5", 2], [1.5, 2.0]),
    ("listBoolean", ["yes", False], [True, False]),
    ("listDateTime", ["2024-05-01T09:30:00Z"], ["2024-05-01T09:30:00+00:00"]),
    ("listDate", [date(2024, 5, 1)], ["2024-05-01"]),
    ("listObject", [{"a": 1}], [{"a": 1}]),
    ("listAny", [1, "a", None, {"b": 2}], [1, "a", None, {"b": 2}]),
]


@pytest.mark.parametrize(("type_", "value", "expected"), COERCIONS)
def test_coerce_value_converts(type_: str, value: Any, expected: Any) -> None:
    spec = ParameterSpec(name="value", type=type_)

    assert coerce_value(spec, value) == expected


def test_coerce_integer_from_csv_keeps_type() -> None:
    spec = ParameterSpec(name="value", type="integer")

    assert type(coerce_value(spec, "42")) is int


def test_coerce_decimal_returns_float() -> None:
    spec = ParameterSpec(name="value", type="decimal")

    assert type(coerce_value(spec, "3")) is float


REJECTIONS: list[tuple[str, Any]] = [
    ("string", True),
    ("string", ["a"]),
    ("string", {"a": 1}),
    ("integer", True),
    ("integer", "4.5"),
    ("integer", "forty"),
    ("integer", 4.5),
    ("integer", ""),
    ("decimal", "nan"),
    ("decimal", "inf"),
    ("decimal", float("nan")),
    ("decimal", float("inf")),
    ("decimal", Decimal("NaN")),
    ("decimal", "1,5"),
    ("decimal", False),
    ("boolean", "maybe"),
    ("boolean", 2),
    ("boolean", 1.0),
    ("dateTime", datetime(2024, 5, 1, 9, 30)),
    ("dateTime", "2024-05-01T09:30:00"),
    ("dateTime", "2024-05-01"),
    ("dateTime", "yesterday"),
    ("dateTime", date(2024, 5, 1)),
    ("date", "01/05/2024"),
    ("date", "2024-02-30"),
    ("date", datetime(2024, 5, 1, tzinfo=UTC)),
    ("date", 20240501),
    ("object", '{"title": "foo"}'),
    ("object", ["a"]),
    ("listString", "a,b"),
    ("listInteger", [1, "two"]),
    ("listAny", {"a": 1}),
]


@pytest.mark.parametrize(("type_", "value"), REJECTIONS)
def test_coerce_value_rejects(type_: str, value: Any) -> None:
    spec = ParameterSpec(name="value", type=type_)

    with pytest.raises(RenderError) as caught:
        coerce_value(spec, value)

    assert caught.value.field == "parameters.value"


def test_coerce_error_names_type_not_value() -> None:
    spec = ParameterSpec(name="age", type="integer")

    with pytest.raises(RenderError) as caught:
        coerce_value(spec, "ana@example.com")

    message = str(caught.value)
    assert "ana@example.com" not in message
    assert "str" in message


def test_coerce_list_error_names_item_index() -> None:
    spec = ParameterSpec(name="scores", type="listInteger")

    with pytest.raises(RenderError) as caught:
        coerce_value(spec, [1, 2, "three"])

    assert "item 2" in str(caught.value)


def test_object_parameter_never_parses_json_text() -> None:
    action = echo_action("object")

    with pytest.raises(RenderError) as caught:
        evaluate_one(action, {"value": "{{ profile.raw }}"}, raw='{"title": "foo"}')

    assert caught.value.field == "parameters.value"


# --- headers ---------------------------------------------------------------------------------


def header_action(header_template: str = "{{ value }}", type_: str = "string") -> ActionDefinition:
    return make_action(
        {"value": {"type": type_, "nullable": True}},
        method="GET",
        headers={"X-Value": header_template},
    )


@pytest.mark.parametrize("text", ["123345", "007"])
def test_header_number_like_string_stays_string(text: str) -> None:
    request = render(header_action(), {"value": "{{ profile.code }}"}, make_profile(code=text))

    assert request.headers["X-Value"] == text


@pytest.mark.parametrize(
    "text",
    ["abc\r\nX-Injected: 1", "abc\nX-Injected: 1", "abc\rdef", "abc\x00", "abc\x1b[31m"],
)
def test_header_injection_is_rejected(text: str) -> None:
    action = header_action()

    with pytest.raises(RenderError) as caught:
        render(action, {"value": "{{ profile.code }}"}, make_profile(code=text))

    assert caught.value.field == "headers.X-Value"


def test_header_injection_error_hides_value() -> None:
    action = header_action()

    with pytest.raises(RenderError) as caught:
        render(action, {"value": "{{ profile.code }}"}, make_profile(code="secret\r\nX: 1"))

    assert "secret" not in str(caught.value)


def test_header_allows_tab_and_non_ascii() -> None:
    request = render(header_action(), {"value": "a\tb é"}, make_profile())

    assert request.headers["X-Value"] == "a\tb é"


def test_header_mixed_text_renders() -> None:
    action = header_action("Bearer-ish {{ value }}")

    request = render(action, {"value": "007"}, make_profile())

    assert request.headers["X-Value"] == "Bearer-ish 007"


def test_header_with_null_value_is_left_out() -> None:
    request = render(header_action(), {"value": None}, make_profile())

    assert "X-Value" not in request.headers


def test_header_boolean_renders_lowercase() -> None:
    request = render(header_action(type_="boolean"), {"value": True}, make_profile())

    assert request.headers["X-Value"] == "true"


# --- query -----------------------------------------------------------------------------------


def test_query_renders_pairs() -> None:
    action = make_action(
        {
            "lang": {"type": "string"},
            "debug": {"type": "boolean"},
            "tags": {"type": "listString"},
            "coupon": {"type": "string", "required": False},
        },
        method="GET",
        query={
            "lang": "{{ lang }}",
            "debug": "{{ debug }}",
            "tag": "{{ tags }}",
            "c": "{{ coupon }}",
        },
    )
    mapping = {"lang": "fr", "debug": False, "tags": ["a", "b"]}

    request = render(action, mapping, make_profile())

    assert request.query == (("lang", "fr"), ("debug", "false"), ("tag", "a"), ("tag", "b"))


def test_query_number_like_string_stays_string() -> None:
    action = make_action({"code": {"type": "string"}}, method="GET", query={"code": "{{ code }}"})

    request = render(action, {"code": "{{ profile.code }}"}, make_profile(code="007"))

    assert request.query == (("code", "007"),)


# --- path ------------------------------------------------------------------------------------


def path_action(template: str = "/users/{{ user_id }}/push") -> ActionDefinition:
    return make_action({"user_id": {"type": "string"}}, method="GET", path=template)


def render_path(user_id: str, template: str = "/users/{{ user_id }}/push") -> str:
    request = render(path_action(template), {"user_id": "{{ profile_id }}"}, make_profile(user_id))
    return request.path


def test_path_inserts_value() -> None:
    assert render_path("u-42") == "/users/u-42/push"


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        ("a/b", "/users/a%2Fb/push"),
        ("//evil.example", "/users/%2F%2Fevil.example/push"),
        ("http://x", "/users/http%3A%2F%2Fx/push"),
        ("a b?c#d", "/users/a%20b%3Fc%23d/push"),
        ("Zoë", "/users/Zo%C3%AB/push"),
    ],
)
def test_path_value_is_percent_encoded(user_id: str, expected: str) -> None:
    assert render_path(user_id) == expected


@pytest.mark.parametrize("user_id", ["..", "%2e%2e", "%2E%2E", "a/../b", "%252e%252e"])
def test_path_dot_dot_is_rejected(user_id: str) -> None:
    with pytest.raises(RenderError) as caught:
        render_path(user_id)

    assert caught.value.field == "path"


@pytest.mark.parametrize("user_id", ["//evil.example", "http://x"])
def test_path_value_at_start_cannot_change_host(user_id: str) -> None:
    path = render_path(user_id, template="{{ user_id }}")

    assert path.startswith("/")
    assert not path.startswith("//")


def test_path_empty_segment_at_start_is_rejected() -> None:
    with pytest.raises(RenderError) as caught:
        render_path("", template="/{{ user_id }}/push")

    assert caught.value.field == "path"


def test_path_without_leading_slash_gets_one() -> None:
    assert render_path("u1", template="users/{{ user_id }}") == "/users/u1"


def test_empty_path_stays_empty() -> None:
    action = make_action({"value": {"type": "string"}}, payload={"value": "{{ value }}"})

    request = render(action, {"value": "x"}, make_profile())

    assert request.path == ""


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "http://evil.example/x",
        "/a/../b",
        "/a/%2e%2e/b",
        "/a/b\\c",
        "/a b",
        "/a\tb",
        "/a?b=1",
        "/a#b",
        "/a\x00",
    ],
)
def test_check_rendered_path_rejects(path: str) -> None:
    with pytest.raises(RenderError):
        check_rendered_path(path)


@pytest.mark.parametrize("path", ["/users/a%2Fb", "/v1/users/42/push", "/a/..b/c", "/a/.../c"])
def test_check_rendered_path_accepts(path: str) -> None:
    assert check_rendered_path(path) == path


# --- idempotency key -------------------------------------------------------------------------


def test_idempotency_key_is_stable() -> None:
    first = idempotency_key(NAMESPACE, "send_push", "p-1")
    second = idempotency_key(NAMESPACE, "send_push", "p-1")

    assert first == second


def test_idempotency_key_known_value() -> None:
    # A fixed value catches any change of the key format, which would re-send to every
    # profile of a run that resumes across an upgrade.
    key = idempotency_key("dag/run/task/-1", "send_push", "p-1")

    assert key == "44540020e083bb301c3ec24a589ce057db803cea4b830f3297a439c224e3fba8"


def test_idempotency_key_is_sha256_hex() -> None:
    key = idempotency_key(NAMESPACE, "send_push", "p-1")

    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("ns", "send_push", "p-1"), ("ns", "send_push", "p-2")),
        (("ns", "send_push", "p-1"), ("ns", "send_email", "p-1")),
        (("dag/run/task/-1", "a", "p"), ("dag/run/task/0", "a", "p")),
        (("ns", "ab", "c"), ("ns", "a", "bc")),
        (("ns|a", "b", "c"), ("ns", "a|b", "c")),
    ],
)
def test_idempotency_key_differs_per_part(
    first: tuple[str, str, str], second: tuple[str, str, str]
) -> None:
    assert idempotency_key(*first) != idempotency_key(*second)


def test_request_carries_idempotency_key_header() -> None:
    request = render(echo_action(), {"value": "x"}, make_profile("p-1"))

    assert request.headers["Idempotency-Key"] == idempotency_key(NAMESPACE, "send_push", "p-1")


def test_request_idempotency_key_field_matches_header() -> None:
    request = render(echo_action(), {"value": "x"}, make_profile("p-1"))

    assert request.idempotency_key == request.headers["Idempotency-Key"]


# --- renderer reuse --------------------------------------------------------------------------


def test_renderer_renders_many_profiles_independently() -> None:
    action = echo_action()
    mapping = ParameterMapping(action, {"value": "{{ profile.name }}"})
    renderer = ActionRenderer(action, key_namespace=NAMESPACE)

    bodies = []
    for index, name in enumerate(["ana", "bo", "chloé"]):
        profile = make_profile(f"p-{index}", name=name)
        bodies.append(
            sent_payload(renderer.render(str(profile.id), mapping.evaluate(profile, RUN)))
        )

    assert bodies == [{"value": "ana"}, {"value": "bo"}, {"value": "chloé"}]
