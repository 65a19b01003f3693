from __future__ import annotations

import pytest

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine.auth import make_authenticator, redact, secret_forms
from airflow_provider_journey.engine.response import (
    ERROR_BODY_CHARS,
    compile_paths,
    error_body_excerpt,
    keep_fields,
)


@pytest.mark.parametrize(
    "document, path, expected",
    [
        ({"a": {"b": 1}}, "a.b", {"a.b": 1}),
        ([{"id": 5}], "0.id", {"0.id": 5}),
        ({"list": [1, 2, 3]}, "list.2", {"list.2": 3}),
        ({"0": "key named zero"}, "0", {"0": "key named zero"}),
        ({"list": [1]}, "list.1", {}),
        ({"list": [1]}, "list.x", {}),
        ({"a": "text"}, "a.b", {}),
        ({"a": {"b": [{"c": False}]}}, "a.b.0.c", {"a.b.0.c": False}),
    ],
)
def test_keep_fields_paths(document: object, path: str, expected: dict[str, object]) -> None:
    assert keep_fields(document, compile_paths([path])) == expected


def test_error_excerpt_cuts_at_limit() -> None:
    excerpt = error_body_excerpt(b"x" * 2000, ())

    assert excerpt == "x" * ERROR_BODY_CHARS + "..."


def test_error_excerpt_empty_body() -> None:
    assert error_body_excerpt(b"", ()) == "(empty body)"


def test_error_excerpt_secret_across_cut_is_hidden() -> None:
    secret = "S3CRET-TOKEN-VALUE"
    body = ("a" * (ERROR_BODY_CHARS - 5) + secret + "tail").encode()

    excerpt = error_body_excerpt(body, (secret,))

    assert "S3CRE" not in excerpt
    assert excerpt.endswith("***...")


def test_error_excerpt_secret_after_cut_leaves_no_part() -> None:
    secret = "S3CRET-TOKEN-VALUE"
    body = ("a" * 10 + secret + "b" * (ERROR_BODY_CHARS - 10) + secret).encode()

    excerpt = error_body_excerpt(body, (secret,))

    assert "S3C" not in excerpt


def test_secret_forms_include_encodings() -> None:
    forms = secret_forms('a/b+c"d')

    assert 'a/b+c"d' in forms
    assert "a%2Fb%2Bc%22d" in forms
    assert 'a/b+c\\"d' in forms


def test_redact_replaces_every_occurrence() -> None:
    assert redact("tok and tok", ("tok",)) == "*** and ***"


def test_authenticator_basic_secrets_include_encoded_header() -> None:
    settings = EndpointSettings(
        conn_id="crm", base_url="http://127.0.0.1:1", auth_type="basic", login="u", secret="p"
    )

    authenticator = make_authenticator(settings)

    assert "dTpw" in authenticator.secrets


def test_authenticator_none_has_no_secrets() -> None:
    settings = EndpointSettings(conn_id="crm", base_url="http://127.0.0.1:1")

    assert make_authenticator(settings).secrets == ()
