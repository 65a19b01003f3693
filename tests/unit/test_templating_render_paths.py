"""Tests of the faster rendering paths: each must give what the plain Jinja or JSON path gives.

The renderer renders Jinja templates with a context of its own making, encodes the
payload as JSON text with holes, checks a constant path and constant headers once, and
hashes the idempotency key prefix once. These tests compare each with an independent
reference: ``jinja2`` rendering in the same sandbox, ``json.dumps``, or the key formula.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_journey.actions import ActionDefinition, parse_action, template_environment
from airflow_provider_journey.exceptions import RenderError
from airflow_provider_journey.templating import (
    ActionRenderer,
    ParameterMapping,
    compile_value,
    format_text,
    idempotency_key,
)
from airflow_provider_journey.types import Profile

NAMESPACE = "welcome_journey/scheduled__2024-05-01/send_push/-1"


def make_action(
    parameters: dict[str, Any],
    *,
    payload: Any = None,
    path: str = "",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    name: str = "send_push",
) -> ActionDefinition:
    document: dict[str, Any] = {
        "name": name,
        "connection_id": "push_service",
        "method": method,
        "path": path,
        "headers": headers or {},
        "parameters": parameters,
    }
    if payload is not None:
        document["payload"] = payload
    return parse_action(document, source="test")


def render_body(action: ActionDefinition, values: dict[str, Any]) -> bytes:
    request = ActionRenderer(action, key_namespace=NAMESPACE).render("p-1", values)
    assert request.body is not None
    return request.body


def compact_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- Jinja templates -------------------------------------------------------------------------

JINJA_REFERENCE = template_environment(finalize=format_text)

JINJA_TEXTS = [
    "{{ 'Welkom' if locale == 'nl' else 'Welcome' }}, {{ first_name }}!",
    "{{ first_name | upper }} has {{ points * 2 }} points",
    "{% for tag in tags %}{{ tag }}{% if not loop.last %}, {% endif %}{% endfor %}.",
    "{% set greeting = 'Hi' %}{{ greeting }} {{ first_name }}",
    "{{ range(3) | join('-') }} {{ dict(a=1) }}",
    "{% set ns = namespace(total=0) %}{% for p in [1, 2] %}{% set ns.total = ns.total + p %}"
    "{% endfor %}{{ ns.total }} points",
    "{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{{ twice(first_name) }}",
    "{{ nothing }} and {{ opted_in }} and {{ tags }}",
]
JINJA_VALUES = {
    "locale": "nl",
    "first_name": "Zoë",
    "points": 21,
    "tags": ["vip", "new"],
    "nothing": None,
    "opted_in": True,
}


@pytest.mark.parametrize("source", JINJA_TEXTS)
def test_text_template_renders_as_jinja(source: str) -> None:
    compiled = compile_value(source)

    assert compiled.evaluate(JINJA_VALUES) == JINJA_REFERENCE.from_string(source).render(
        JINJA_VALUES
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ points + 1 }}", 22),
        ("{{ tags | length }}", 2),
        ("{{ 'nl' if locale == 'nl' else none }}", "nl"),
        ("{{ tags + ['x'] }}", ["vip", "new", "x"]),
    ],
)
def test_expression_keeps_native_value(source: str, expected: Any) -> None:
    assert compile_value(source).evaluate(JINJA_VALUES) == expected


def test_template_set_stays_in_its_template() -> None:
    action = make_action(
        {"name": {"type": "string"}},
        payload={"a": "{% set name = 'X' %}{{ name }}!", "b": "{{ name | upper }}?"},
    )

    body = render_body(action, {"name": "ana"})

    assert json.loads(body) == {"a": "X!", "b": "ANA?"}


def test_name_overrides_jinja_global() -> None:
    compiled = compile_value("{{ range | upper }}!")

    assert compiled.evaluate({"range": "far"}) == "FAR!"


def test_text_template_runs_in_sandbox() -> None:
    action = make_action(
        {"value": {"type": "string"}}, payload={"text": "x {{ value.__class__.__mro__ }}"}
    )

    with pytest.raises(RenderError, match="not allowed in the sandbox") as caught:
        render_body(action, {"value": "a"})

    assert caught.value.field == "payload.text"


def test_expression_runs_in_sandbox() -> None:
    action = make_action(
        {"value": {"type": "string"}}, payload={"text": "{{ value.__class__.__mro__ | list }}"}
    )

    with pytest.raises(RenderError, match="not allowed in the sandbox") as caught:
        render_body(action, {"value": "a"})

    assert caught.value.field == "payload.text"


def test_text_template_undefined_attribute_is_error() -> None:
    action = make_action(
        {"data": {"type": "object"}},
        payload={"text": "{{ 'a' if data.locael == 'nl' else 'b' }}!"},
    )

    with pytest.raises(RenderError, match="locael") as caught:
        render_body(action, {"data": {"locale": "nl"}})

    assert caught.value.field == "payload.text"


def test_mapping_text_undefined_attribute_is_error() -> None:
    action = make_action({"value": {"type": "string"}}, payload={"value": "{{ value }}"})
    mapping = ParameterMapping(action, {"value": "{{ 'a' if profile.locael else 'b' }}!"})
    profile = Profile(id="p-1", attributes={"locale": "nl"}, row=1)

    with pytest.raises(RenderError, match="locael") as caught:
        mapping.evaluate(profile, {})

    assert caught.value.field == "parameters.value"


def test_text_template_failure_names_error_type() -> None:
    action = make_action({"zero": {"type": "integer"}}, payload={"text": "{{ 1 // zero }}!"})

    with pytest.raises(RenderError, match="ZeroDivisionError") as caught:
        render_body(action, {"zero": 0})

    assert caught.value.field == "payload.text"


# --- payload as JSON text with holes ---------------------------------------------------------

PAYLOAD_PARAMETERS = {
    "text": {"type": "string"},
    "count": {"type": "integer"},
    "ratio": {"type": "decimal"},
    "flag": {"type": "boolean"},
    "data": {"type": "object"},
    "items": {"type": "listAny"},
    "missing": {"type": "string", "required": False},
}
PAYLOAD_TEMPLATE = {
    "text": "{{ text }}",
    'quoted "key" é': "{{ count }}",
    "nested": {
        "ratio": "{{ ratio }}",
        "flag": "{{ flag }}",
        "list": ["{{ text }}", 1, None, "fixed", "{{ missing }}", [], {}],
        "mixed": "{{ count }} of {{ text }}",
    },
    "data": "{{ data }}",
    "items": "{{ items }}",
    "constants": {"int": 7, "float": 2.5, "true": True, "none": None, "empty": ""},
    "missing": "{{ missing }}",
}
PAYLOAD_VALUES = {
    "text": 'Zoë "Z" \\ 🎉\n',
    "count": -3,
    "ratio": 0.1,
    "flag": False,
    "data": {"at": date(2024, 5, 1), "amount": Decimal("9.5"), "list": [1, None]},
    "items": [1, "a", None, {"b": 2.0}],
    "missing": None,
}
PAYLOAD_EXPECTED = {
    "text": 'Zoë "Z" \\ 🎉\n',
    'quoted "key" é': -3,
    "nested": {
        "ratio": 0.1,
        "flag": False,
        "list": ['Zoë "Z" \\ 🎉\n', 1, None, "fixed", None, [], {}],
        "mixed": '-3 of Zoë "Z" \\ 🎉\n',
    },
    "data": {"at": "2024-05-01", "amount": 9.5, "list": [1, None]},
    "items": [1, "a", None, {"b": 2.0}],
    "constants": {"int": 7, "float": 2.5, "true": True, "none": None, "empty": ""},
    "missing": None,
}


def test_payload_bytes_match_whole_encoding() -> None:
    action = make_action(PAYLOAD_PARAMETERS, payload=PAYLOAD_TEMPLATE)

    body = render_body(action, PAYLOAD_VALUES)

    assert body == compact_json(PAYLOAD_EXPECTED)


def test_payload_single_leaf_matches_whole_encoding() -> None:
    action = make_action({"data": {"type": "object"}}, payload="{{ data }}")

    body = render_body(action, {"data": {"a": [1, 2], "b": "é"}})

    assert body == compact_json({"a": [1, 2], "b": "é"})


def test_payload_without_templates_is_constant() -> None:
    action = make_action(
        {"token": {"type": "string"}},
        payload={"kind": "welcome", "ttl": 60},
        headers={"X-Token": "{{ token }}"},
    )

    body = render_body(action, {"token": "t"})

    assert body == b'{"kind":"welcome","ttl":60}'


def test_payload_with_int_key_encodes_as_string() -> None:
    action = make_action({"value": {"type": "string"}}, payload={1: "x", "value": "{{ value }}"})

    body = render_body(action, {"value": "v"})

    assert body == b'{"1":"x","value":"v"}'


def test_payload_nan_constant_fails_per_profile() -> None:
    action = make_action(
        {"value": {"type": "string"}}, payload={"n": float("nan"), "value": "{{ value }}"}
    )
    renderer = ActionRenderer(action, key_namespace=NAMESPACE)

    for profile_id in ("p-1", "p-2"):
        with pytest.raises(RenderError, match="NaN or infinity") as caught:
            renderer.render(profile_id, {"value": "v"})
        assert caught.value.field == "payload"


def test_payload_unencodable_value_names_type() -> None:
    action = make_action({"data": {"type": "object"}}, payload={"data": "{{ data }}"})

    with pytest.raises(RenderError, match="set is not JSON serializable") as caught:
        render_body(action, {"data": {"tags": {"a"}}})

    assert caught.value.field == "payload"


def test_payload_template_error_wins_over_encoding() -> None:
    action = make_action(
        {"data": {"type": "object"}, "name": {"type": "string"}},
        payload={"data": "{{ data }}", "name": "{{ name.first }}"},
    )

    with pytest.raises(RenderError) as caught:
        render_body(action, {"data": {"tags": {"a"}}, "name": "ana"})

    assert caught.value.field == "payload.name"


# --- path and headers without templates ------------------------------------------------------


def test_constant_path_is_rendered_with_slash() -> None:
    action = make_action(
        {"value": {"type": "string"}}, path="v1/push", payload={"v": "{{ value }}"}
    )

    request = ActionRenderer(action, key_namespace=NAMESPACE).render("p-1", {"value": "x"})

    assert request.path == "/v1/push"


def test_invalid_constant_path_fails_every_profile() -> None:
    action = make_action({"value": {"type": "string"}}, path="/a b", payload={"v": "{{ value }}"})
    renderer = ActionRenderer(action, key_namespace=NAMESPACE)

    for profile_id in ("p-1", "p-2"):
        with pytest.raises(RenderError, match="whitespace") as caught:
            renderer.render(profile_id, {"value": "x"})
        assert caught.value.field == "path"


def test_constant_headers_keep_order_and_values() -> None:
    action = make_action(
        {"token": {"type": "string"}},
        method="GET",
        headers={"Accept": "application/json", "X-Token": "{{ token }}", "X-Version": "2"},
    )

    request = ActionRenderer(action, key_namespace=NAMESPACE).render("p-1", {"token": "t"})

    assert list(request.headers.items()) == [
        ("Accept", "application/json"),
        ("X-Token", "t"),
        ("X-Version", "2"),
        ("Idempotency-Key", request.idempotency_key),
    ]


# --- idempotency key ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile_id", ["p-1", "Zoë", "a|b", "", "12:34"])
def test_renderer_key_matches_key_formula(profile_id: str) -> None:
    action = make_action({"value": {"type": "string"}}, payload={"v": "{{ value }}"})
    parts = (NAMESPACE, "send_push", profile_id)
    text = "journey-idempotency-key/v1|" + "|".join(f"{len(part)}:{part}" for part in parts)

    request = ActionRenderer(action, key_namespace=NAMESPACE).render(profile_id, {"value": "x"})

    assert request.idempotency_key == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert request.idempotency_key == idempotency_key(NAMESPACE, "send_push", profile_id)
