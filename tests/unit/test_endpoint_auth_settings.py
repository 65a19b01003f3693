"""Bad authentication, TLS, proxy and Redis input on an endpoint connection.

Each case checks that the error names the connection and the field, says what to do,
and shows no secret. The cases run on EndpointSettings, through CustomActionHook with an
AIRFLOW_CONN_<ID> variable, and for token responses through a Sender call against a
token endpoint on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from pytest_httpserver import HTTPServer

from airflow_provider_journey.endpoint import KNOWN_EXTRAS, SECRET_EXTRAS, EndpointSettings
from airflow_provider_journey.engine import CallPolicy, Sender
from airflow_provider_journey.engine.auth.token import token_lifetime
from airflow_provider_journey.exceptions import EndpointConfigError
from airflow_provider_journey.get_provider_info import get_provider_info
from airflow_provider_journey.hooks.custom_action import CustomActionHook
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest

PASSWORD = "pw-field-secret-4242"
CLIENT_SECRET = "cs-field-secret-4242"
KEY_PASSWORD = "kp-field-secret-4242"
PROXY_PASSWORD = "px-field-secret-4242"
REDIS_PASSWORD = "rd-field-secret-4242"
FORM_PREFIX = "extra__custom_action__"


def new_conn_id() -> str:
    return f"auth_{uuid.uuid4().hex[:8]}"


def parse(conn_id: str = "push_api", **extra: Any) -> EndpointSettings:
    password = extra.pop("password", PASSWORD)
    return EndpointSettings.from_connection_fields(
        conn_id, host="https://api.example.com/v1", login="svc", password=password, extra=extra
    )


def problems_of(**extra: Any) -> EndpointConfigError:
    with pytest.raises(EndpointConfigError) as caught:
        parse(**extra)
    return caught.value


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    fields.setdefault("conn_type", "custom_action")
    fields.setdefault("host", "http://127.0.0.1:9")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def hook_error(monkeypatch: pytest.MonkeyPatch, **fields: Any) -> tuple[str, EndpointConfigError]:
    conn_id = new_conn_id()
    set_connection(monkeypatch, conn_id, **fields)
    with pytest.raises(EndpointConfigError) as caught:
        _ = CustomActionHook(conn_id).settings
    return conn_id, caught.value


# Certificates made at test time -------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_pems(ca: trustme.CA) -> dict[str, str]:
    client = ca.issue_cert("journey-client@example.com")
    return {
        "client_cert": client.cert_chain_pems[0].bytes().decode(),
        "client_key": client.private_key_pem.bytes().decode(),
    }


def encrypted(key_pem: str, password: str) -> str:
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    encryption = serialization.BestAvailableEncryption(password.encode())
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return data.decode()


# Unknown auth type ----------------------------------------------------------------------


def test_unknown_auth_type_names_connection() -> None:
    error = problems_of(auth_type="oauth2")

    assert error.conn_id == "push_api"
    assert "Endpoint connection 'push_api'" in str(error)


def test_unknown_auth_type_lists_choices() -> None:
    error = problems_of(auth_type="oauth2")

    assert error.problems == [
        "extra 'auth_type': 'oauth2' is not one of none, basic, api_key, bearer, token_endpoint"
    ]


def test_auth_type_description_lists_every_mode() -> None:
    assert "token_endpoint" in KNOWN_EXTRAS["auth_type"]


# Expiry settings that are not numbers -------------------------------------------------


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("token_ttl_seconds", "one hour", "extra 'token_ttl_seconds': 'one hour' is not a number"),
        ("token_ttl_seconds", 0, "extra 'token_ttl_seconds': 0 must be a number above 0"),
        (
            "token_safety_margin_seconds",
            "1m",
            "extra 'token_safety_margin_seconds': '1m' is not a number",
        ),
        (
            "token_safety_margin_seconds",
            -5,
            "extra 'token_safety_margin_seconds': -5 must be a number of 0 or more",
        ),
    ],
    ids=["ttl-text", "ttl-zero", "margin-text", "margin-negative"],
)
def test_expiry_setting_not_a_number(key: str, value: Any, expected: str) -> None:
    error = problems_of(auth_type="token_endpoint", token_url="/token", **{key: value})

    assert error.problems == [expected]


def test_both_expiry_paths_rejected() -> None:
    error = problems_of(
        auth_type="token_endpoint",
        token_url="/token",
        token_expires_in_path="expires_in",
        token_expires_at_path="expires_at",
    )

    assert "set at most one" in str(error)


def test_unknown_token_placeholder_hides_literal_secret() -> None:
    literal = "abc$def-literal-secret"

    error = problems_of(
        auth_type="token_endpoint", token_url="/token", token_body={"client_secret": literal}
    )

    assert "unknown placeholder $def" in str(error)
    assert literal not in str(error)


# Certificates and keys ------------------------------------------------------------------


@pytest.mark.parametrize("key", ["client_cert", "client_key", "ca_bundle"])
def test_text_that_is_not_pem_names_field(key: str) -> None:
    error = problems_of(**{key: "/etc/ssl/client.pem"})

    assert any(problem.startswith(f"extra {key!r}: not PEM text") for problem in error.problems)
    assert "file paths are not read" in str(error)


def test_certificate_without_key_rejected(ca: trustme.CA) -> None:
    error = problems_of(client_cert=client_pems(ca)["client_cert"])

    assert "mTLS needs both the client certificate and its private key" in str(error)


def test_key_pasted_as_certificate_rejected(ca: trustme.CA) -> None:
    pems = client_pems(ca)

    error = problems_of(client_cert=pems["client_key"], client_key=pems["client_key"])

    assert "extra 'client_cert': not PEM text" in str(error)


def test_pem_with_escaped_newlines_accepted(ca: trustme.CA) -> None:
    one_line = {key: value.replace("\n", "\\n") for key, value in client_pems(ca).items()}

    settings = parse(**one_line)

    assert (settings.client_cert or "").startswith("-----BEGIN CERTIFICATE-----\n")


def test_encrypted_key_without_password_rejected(ca: trustme.CA) -> None:
    pems = client_pems(ca)
    pems["client_key"] = encrypted(pems["client_key"], KEY_PASSWORD)

    error = problems_of(**pems)

    assert "extra 'client_key_password': the client key is encrypted" in str(error)


def test_hook_rejects_mismatched_key(monkeypatch: pytest.MonkeyPatch, ca: trustme.CA) -> None:
    pems = client_pems(ca)
    pems["client_key"] = client_pems(ca)["client_key"]

    conn_id, error = hook_error(monkeypatch, extra=pems)

    assert error.conn_id == conn_id
    assert "'client_cert' and 'client_key'" in str(error)
    assert "check that the key belongs to the certificate" in str(error)


def test_hook_rejects_unreadable_certificate(
    monkeypatch: pytest.MonkeyPatch, ca: trustme.CA
) -> None:
    pems = client_pems(ca)
    pems["client_cert"] = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----"

    _, error = hook_error(monkeypatch, extra=pems)

    assert "'client_cert' and 'client_key': the client certificate and key cannot be" in str(error)


def test_hook_rejects_unreadable_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"

    _, error = hook_error(monkeypatch, extra={"ca_bundle": broken})

    assert "extra 'ca_bundle': the CA certificates cannot be loaded" in str(error)


def test_hook_rejects_wrong_key_password(monkeypatch: pytest.MonkeyPatch, ca: trustme.CA) -> None:
    pems = client_pems(ca)
    pems["client_key"] = encrypted(pems["client_key"], KEY_PASSWORD)

    _, error = hook_error(monkeypatch, extra={**pems, "client_key_password": "not-the-password"})

    assert "set client_key_password for an encrypted key" in str(error)
    assert KEY_PASSWORD not in str(error)


def test_hook_accepts_matching_encrypted_key(
    monkeypatch: pytest.MonkeyPatch, ca: trustme.CA
) -> None:
    pems = client_pems(ca)
    pems["client_key"] = encrypted(pems["client_key"], KEY_PASSWORD)
    conn_id = new_conn_id()
    set_connection(monkeypatch, conn_id, extra={**pems, "client_key_password": KEY_PASSWORD})

    settings = CustomActionHook(conn_id).settings

    assert settings.client_key_password == KEY_PASSWORD


# Redis and proxy URLs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        (f"redis://:{REDIS_PASSWORD}@[::1/0", "extra 'redis_url': not a valid URL"),
        (f"redis://:{REDIS_PASSWORD}@cache:63a9/0", "extra 'redis_url': not a valid URL"),
        (
            f"memcached://:{REDIS_PASSWORD}@cache:11211",
            "extra 'redis_url': scheme 'memcached' is not supported",
        ),
        (f"redis://:{REDIS_PASSWORD}@/0", "extra 'redis_url': names no host"),
        (6379, "extra 'redis_url': a int is not a URL"),
    ],
    ids=["bracket", "port-text", "scheme", "no-host", "number"],
)
def test_bad_redis_url_names_field_not_password(url: Any, expected: str) -> None:
    error = problems_of(redis_url=url)

    assert expected in str(error)
    assert "redis://host:port/db" in str(error)
    assert REDIS_PASSWORD not in str(error)


@pytest.mark.parametrize(
    "url, expected",
    [
        (f"http://user:{PROXY_PASSWORD}@[::1:3128", "is not a valid URL"),
        (f"http://user:{PROXY_PASSWORD}@proxy:31x8", "is not a valid URL"),
        (f"socks5://user:{PROXY_PASSWORD}@proxy:1080", "scheme 'socks5' is not supported"),
        ("proxy.example.com:3128", "scheme 'proxy.example.com' is not supported"),
        ("http://proxy.example.com", "names no port"),
        (f"http://user:{PROXY_PASSWORD}@proxy:3128", "must not contain credentials"),
    ],
    ids=["bracket", "port-text", "socks", "no-scheme", "no-port", "credentials"],
)
def test_bad_proxy_url_names_field_not_password(url: str, expected: str) -> None:
    error = problems_of(proxy_url=url)

    assert "extra 'proxy_url': " in str(error)
    assert expected in str(error)
    assert "http://host:port" in str(error) or "proxy_login" in str(error)
    assert PROXY_PASSWORD not in str(error)


def test_token_url_error_hides_credentials() -> None:
    error = problems_of(
        auth_type="token_endpoint", token_url=f"ftp://svc:{CLIENT_SECRET}@auth.example.com/t"
    )

    assert "extra 'token_url'" in str(error)
    assert CLIENT_SECRET not in str(error)


def test_whole_float_accepted_for_whole_number() -> None:
    assert parse(max_connections=10.0).max_connections == 10


# Form fields and accepted keys -------------------------------------------------------


def conn_fields() -> dict[str, Any]:
    fields: dict[str, Any] = get_provider_info()["connection-types"][0]["conn-fields"]
    return fields


def test_every_form_field_is_a_known_extra() -> None:
    assert set(conn_fields()) - set(KNOWN_EXTRAS) == set()


def test_every_known_extra_is_a_form_field() -> None:
    assert set(KNOWN_EXTRAS) - set(conn_fields()) == set()


def test_secret_form_fields_are_the_secret_extras() -> None:
    password_fields = {
        name for name, spec in conn_fields().items() if spec["schema"].get("format") == "password"
    }

    assert password_fields == set(SECRET_EXTRAS)


@pytest.mark.parametrize("name", sorted(SECRET_EXTRAS))
def test_secret_field_has_password_format(name: str) -> None:
    assert conn_fields()[name]["schema"]["format"] == "password"


@pytest.mark.parametrize("name", sorted(KNOWN_EXTRAS))
def test_form_field_accepted_with_form_prefix(name: str) -> None:
    try:
        parse(**{f"{FORM_PREFIX}{name}": "__unlikely value__"})
    except EndpointConfigError as error:
        problems = error.problems
    else:
        problems = []

    assert not [problem for problem in problems if "unknown setting" in problem]


# Secrets in error texts and repr ------------------------------------------------------


def all_secret_extras(ca: trustme.CA) -> dict[str, Any]:
    pems = client_pems(ca)
    return {
        "auth_type": "token_endpoint",
        "token_url": "/token",
        "token_client_secret": CLIENT_SECRET,
        "client_cert": pems["client_cert"],
        "client_key": encrypted(pems["client_key"], KEY_PASSWORD),
        "client_key_password": KEY_PASSWORD,
        "proxy_url": "http://proxy.example.com:3128",
        "proxy_login": "proxy-user",
        "proxy_password": PROXY_PASSWORD,
        "redis_url": f"redis://:{REDIS_PASSWORD}@cache.example.com:6379/0",
    }


def secret_values(extra: dict[str, Any]) -> list[str]:
    return [PASSWORD, *(str(extra[key]) for key in SECRET_EXTRAS)]


def test_repr_shows_no_secret(ca: trustme.CA) -> None:
    extra = all_secret_extras(ca)

    text = repr(parse(**extra))

    for secret in secret_values(extra):
        assert secret not in text


def test_error_text_shows_no_secret(ca: trustme.CA) -> None:
    extra = all_secret_extras(ca)
    extra.update(auth_type="basic", timeout="soon", api_version=2)

    error = problems_of(**extra)

    for secret in secret_values(extra):
        assert secret not in str(error)


def test_error_text_shows_no_invalid_secret() -> None:
    extra = {
        "client_cert": "cert",
        "client_key": "key-" + KEY_PASSWORD,
        "redis_url": "tcp://:" + REDIS_PASSWORD,
        "proxy_url": f"ftp://u:{PROXY_PASSWORD}@x",
    }

    error = problems_of(**extra)

    for secret in (KEY_PASSWORD, REDIS_PASSWORD, PROXY_PASSWORD):
        assert secret not in str(error)


# The same cases through the hook ---------------------------------------------------------


def test_hook_unknown_auth_type_names_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id, error = hook_error(monkeypatch, extra={"auth_type": "oauth2"})

    assert f"Endpoint connection {conn_id!r}" in str(error)
    assert "extra 'auth_type': 'oauth2' is not one of" in str(error)


def test_hook_prefixed_unknown_auth_type(monkeypatch: pytest.MonkeyPatch) -> None:
    _, error = hook_error(monkeypatch, extra={f"{FORM_PREFIX}auth_type": "oauth2"})

    assert error.problems == [
        "extra 'auth_type': 'oauth2' is not one of none, basic, api_key, bearer, token_endpoint"
    ]


def test_hook_prefixed_fields_and_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = new_conn_id()
    extra: dict[str, Any] = {f"{FORM_PREFIX}{name}": "" for name in KNOWN_EXTRAS}
    extra[f"{FORM_PREFIX}auth_type"] = "bearer"
    extra[f"{FORM_PREFIX}verify_ssl"] = None
    extra[f"{FORM_PREFIX}proxy_url"] = "http://127.0.0.1:3128"
    set_connection(monkeypatch, conn_id, password=PASSWORD, extra=extra)

    settings = CustomActionHook(conn_id).settings

    assert settings.auth_type == "bearer"
    assert settings.verify_ssl is True
    assert settings.proxy_url == "http://127.0.0.1:3128"
    assert settings.timeout == 30.0


def test_hook_blank_auth_type_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = new_conn_id()
    set_connection(monkeypatch, conn_id, extra={f"{FORM_PREFIX}auth_type": None})

    assert CustomActionHook(conn_id).settings.auth_type == "none"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({f"{FORM_PREFIX}redis_url": f"redis://:{REDIS_PASSWORD}@[::1"}, "'redis_url'"),
        (
            {f"{FORM_PREFIX}proxy_url": f"socks5://u:{PROXY_PASSWORD}@p:1080"},
            "scheme 'socks5'",
        ),
        ({f"{FORM_PREFIX}client_key": "key-" + KEY_PASSWORD}, "'client_key': not PEM"),
        (
            {
                f"{FORM_PREFIX}auth_type": "token_endpoint",
                f"{FORM_PREFIX}token_url": "/token",
                f"{FORM_PREFIX}token_ttl_seconds": "an hour",
                f"{FORM_PREFIX}token_client_secret": CLIENT_SECRET,
            },
            "'token_ttl_seconds': 'an hour' is not a number",
        ),
    ],
    ids=["redis", "proxy", "client-key", "expiry"],
)
def test_hook_error_names_field_not_secret(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], expected: str
) -> None:
    conn_id, error = hook_error(monkeypatch, password=PASSWORD, extra=extra)

    assert conn_id in str(error)
    assert expected in str(error)
    for secret in (PASSWORD, CLIENT_SECRET, KEY_PASSWORD, PROXY_PASSWORD, REDIS_PASSWORD):
        assert secret not in str(error)


def test_hook_test_connection_reports_bad_key(
    monkeypatch: pytest.MonkeyPatch, ca: trustme.CA
) -> None:
    pems = client_pems(ca)
    pems["client_key"] = client_pems(ca)["client_key"]
    conn_id = new_conn_id()
    set_connection(monkeypatch, conn_id, extra=pems)

    ok, message = CustomActionHook(conn_id).test_connection()

    assert not ok
    assert "is not reachable" not in message
    assert "'client_cert' and 'client_key'" in message


# Token responses, through a Sender call ---------------------------------------------------

FAST = CallPolicy(max_retries=0, backoff_base=0.01, backoff_max=0.05)


def send_with_token_response(
    httpserver: HTTPServer, conn_id: str, body: str | dict[str, Any], **extra: Any
) -> Outcome:
    if isinstance(body, dict):
        httpserver.expect_request("/token").respond_with_json(body)
    else:
        httpserver.expect_request("/token").respond_with_data(body, content_type="text/html")
    httpserver.expect_request("/api").respond_with_json({"ok": True})
    settings = EndpointSettings.from_connection_fields(
        conn_id,
        host=httpserver.url_for("/"),
        login="svc",
        password=PASSWORD,
        extra={"auth_type": "token_endpoint", "token_url": "/token", **extra},
    )
    request = PreparedRequest(
        profile_id="p1",
        method="GET",
        path="/api",
        headers={},
        query=(),
        body=None,
        idempotency_key="key-p1",
    )

    async def run() -> Outcome:
        async with Sender(settings, "notify", FAST) as sender:
            return await sender.send(request)

    return asyncio.run(run())


@pytest.mark.parametrize(
    "body, extra, expected",
    [
        (
            "<html>sign in</html>",
            {"token_path": "access_token"},
            "the token response is not JSON, so extra 'token_path'",
        ),
        (
            {"token": "tok-0123456789"},
            {"token_path": "access_token"},
            "has no string at extra 'token_path' ('access_token'); its top-level fields are token",
        ),
        (
            {"data": {"token": "tok-0123456789"}},
            {"token_path": "data.id_token"},
            "has no string at extra 'token_path' ('data.id_token')",
        ),
        (
            {"access_token": "tok-0123456789", "expires_in": "an hour"},
            {"token_path": "access_token", "token_expires_in_path": "expires_in"},
            "extra 'token_expires_in_path' ('expires_in') is str 'an hour'",
        ),
        (
            {"access_token": "tok-0123456789", "expires_at": "tomorrow"},
            {"token_path": "access_token", "token_expires_at_path": "expires_at"},
            "not Unix seconds or an ISO 8601 timestamp",
        ),
        (
            "tok-0123456789",
            {"token_expires_in_path": "expires_in"},
            "the token response is not JSON, so extra 'token_expires_in_path'",
        ),
    ],
    ids=["html", "missing-path", "missing-nested", "expires-in-text", "expires-at-text", "plain"],
)
def test_bad_token_response_fails_call(
    httpserver: HTTPServer, body: Any, extra: dict[str, Any], expected: str
) -> None:
    conn_id = new_conn_id()

    outcome = send_with_token_response(httpserver, conn_id, body, **extra)

    assert outcome.status is OutcomeStatus.FAILED
    assert expected in (outcome.error or "")
    assert PASSWORD not in (outcome.error or "")


def test_bad_token_response_logged_with_connection(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn_id = new_conn_id()

    send_with_token_response(httpserver, conn_id, "<html/>", token_path="access_token")

    assert f"Endpoint connection {conn_id!r}: the token response is not JSON" in caplog.text


def test_bad_token_response_outcome_names_connection(httpserver: HTTPServer) -> None:
    conn_id = new_conn_id()

    outcome = send_with_token_response(httpserver, conn_id, "<html/>", token_path="access_token")

    assert conn_id in (outcome.error or "")


def test_bad_token_response_sends_no_call(httpserver: HTTPServer) -> None:
    send_with_token_response(httpserver, new_conn_id(), "<html/>", token_path="access_token")

    assert [request.path for request, _ in httpserver.log] == ["/token"]


def test_expiry_in_milliseconds_rejected() -> None:
    from airflow_provider_journey.engine.auth import AuthenticationError

    settings = parse(auth_type="token_endpoint", token_url="/t", token_expires_at_path="exp")
    assert settings.token is not None
    expires_ms = (time.time() + 3600) * 1000

    with pytest.raises(AuthenticationError):
        token_lifetime({"exp": expires_ms}, settings.token, settings.conn_id)
