"""Endpoint settings: what an endpoint connection says about where and how to call.

``EndpointSettings.from_connection_fields`` turns the fields of an Airflow Connection
(host, schema, port, login, password, extra) into checked settings; it imports nothing
from Airflow so the engine can use it alone. Every extra key must be known: a setting
that is not understood is an error, never an HTTP header.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_journey.exceptions import EndpointConfigError

AUTH_TYPES = ("none", "basic", "api_key", "bearer", "token_endpoint")
CAPPING_MODES = ("throttle", "reject")
API_KEY_LOCATIONS = ("header", "query")
TOKEN_METHODS = ("POST", "GET")
TOKEN_BODY_FORMATS = ("form", "json")
TOKEN_PLACEMENTS = ("bearer", "header", "query")
# Names a token request body or header may use, as $login, $password or $client_secret.
TOKEN_PLACEHOLDERS = ("login", "password", "client_secret")

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CALLS_PER_PERIOD = 300_000
DEFAULT_PERIOD_SECONDS = 60.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_TOKEN_TTL_SECONDS = 3600.0
DEFAULT_TOKEN_SAFETY_MARGIN_SECONDS = 60.0

# Extra keys an endpoint connection understands, with what each sets.
KNOWN_EXTRAS: dict[str, str] = {
    "timeout": "per-call timeout in seconds (default 30)",
    "calls_per_period": "capping: at most this many calls per period (default 300000)",
    "period_seconds": "capping: length of the sliding window in seconds (default 60)",
    "max_connections": "at most this many open connections at once (default 100)",
    "capping_mode": "'throttle' waits for a slot (default), 'reject' ends the call as capped",
    "headers": "default headers sent with every call, as a JSON object",
    "auth_type": "one of none, basic, api_key, bearer, token_endpoint (default none)",
    "api_key_name": "api_key auth: header or query parameter name that carries the key",
    "api_key_in": "api_key auth: 'header' (default) or 'query'",
    "verify_ssl": "verify the server's TLS certificate (default true)",
    "allow_redirects": "follow redirects for methods other than GET (default false)",
    "redis_url": "capping store shared by every process: redis:// or rediss:// URL "
    "(default: in memory, per process)",
    "token_url": "token_endpoint auth: URL of the token endpoint, or a path on the base URL",
    "token_method": "token_endpoint auth: POST (default) or GET",
    "token_body_format": "token_endpoint auth: 'form' (default) or 'json' request body",
    "token_body": "token_endpoint auth: request fields as a JSON object; values may use "
    "$login, $password and $client_secret",
    "token_headers": "token_endpoint auth: headers of the token request, as a JSON object",
    "token_path": "token_endpoint auth: JSON path of the token, such as access_token; "
    "empty means the whole body is the token",
    "token_placement": "token_endpoint auth: 'bearer' (default), 'header' or 'query'",
    "token_name": "token_endpoint auth: header or query parameter name for the token",
    "token_ttl_seconds": "token_endpoint auth: seconds a token is used when the response "
    "gives no expiry (default 3600)",
    "token_expires_in_path": "token_endpoint auth: JSON path of the token lifetime in seconds",
    "token_expires_at_path": "token_endpoint auth: JSON path of the expiry time "
    "(Unix seconds or ISO 8601)",
    "token_safety_margin_seconds": "token_endpoint auth: seconds before expiry at which a "
    "token is renewed (default 60)",
    "token_client_secret": "token_endpoint auth: client secret, used as $client_secret",
    "client_cert": "mTLS: client certificate (PEM text)",
    "client_key": "mTLS: private key of the client certificate (PEM text)",
    "client_key_password": "mTLS: password of an encrypted private key",
    "ca_bundle": "CA certificates (PEM text) that sign the server certificate; "
    "default the system trust store",
    "proxy_url": "HTTP proxy for calls and token requests, such as http://proxy:3128",
    "proxy_login": "proxy user name",
    "proxy_password": "proxy password",
}

# Extras that hold secrets: masked as soon as they are read, never shown in repr.
SECRET_EXTRAS = (
    "token_client_secret",
    "client_key",
    "client_key_password",
    "proxy_password",
    "redis_url",
)


@dataclass(frozen=True)
class TokenEndpointSettings:
    """How to fetch, read, place and cache a token from a token endpoint.

    ``body`` and ``headers`` still contain the ``$login``, ``$password`` and
    ``$client_secret`` placeholders; the engine fills them in when it sends the
    token request, so the secrets stay out of ``repr``.
    """

    url: str
    method: str = "POST"
    body_format: str = "form"
    body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    token_path: str | None = None
    placement: str = "bearer"
    name: str | None = None
    ttl_seconds: float = DEFAULT_TOKEN_TTL_SECONDS
    expires_in_path: str | None = None
    expires_at_path: str | None = None
    safety_margin_seconds: float = DEFAULT_TOKEN_SAFETY_MARGIN_SECONDS
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EndpointSettings:
    """Checked settings of one endpoint connection.

    ``secret`` is the password field: the basic-auth password, the API key, the
    bearer token or the token endpoint's ``$password``, depending on ``auth_type``.
    No secret appears in ``repr``.
    """

    conn_id: str
    base_url: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    calls_per_period: int = DEFAULT_CALLS_PER_PERIOD
    period_seconds: float = DEFAULT_PERIOD_SECONDS
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    capping_mode: str = "throttle"
    headers: Mapping[str, str] = field(default_factory=dict)
    auth_type: str = "none"
    login: str | None = None
    secret: str | None = field(default=None, repr=False)
    api_key_name: str | None = None
    api_key_in: str = "header"
    verify_ssl: bool = True
    allow_redirects: bool = False
    # May carry a Redis password, so it stays out of repr.
    redis_url: str | None = field(default=None, repr=False)
    token: TokenEndpointSettings | None = None
    client_cert: str | None = field(default=None, repr=False)
    client_key: str | None = field(default=None, repr=False)
    client_key_password: str | None = field(default=None, repr=False)
    ca_bundle: str | None = field(default=None, repr=False)
    proxy_url: str | None = None
    proxy_login: str | None = None
    proxy_password: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value of the connection that is set."""
        values = (
            self.secret,
            self.token.client_secret if self.token else None,
            self.client_key,
            self.client_key_password,
            self.proxy_password,
        )
        return tuple(value for value in values if value)

    @classmethod
    def from_connection_fields(
        cls,
        conn_id: str,
        *,
        host: str | None,
        schema: str | None = None,
        port: int | None = None,
        login: str | None = None,
        password: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> EndpointSettings:
        """Build checked settings; raise EndpointConfigError listing every problem."""
        problems: list[str] = []
        extra = normalize_extra(extra or {})

        for key in sorted(set(extra) - set(KNOWN_EXTRAS)):
            problems.append(
                f"extra {key!r}: unknown setting; known settings are "
                f"{', '.join(sorted(KNOWN_EXTRAS))} (it is not sent as a header)"
            )

        base_url = _base_url(host, schema, port, problems)
        timeout = _positive_number(extra, "timeout", DEFAULT_TIMEOUT_SECONDS, problems)
        calls = _positive_int(extra, "calls_per_period", DEFAULT_CALLS_PER_PERIOD, problems)
        period = _positive_number(extra, "period_seconds", DEFAULT_PERIOD_SECONDS, problems)
        max_connections = _positive_int(extra, "max_connections", DEFAULT_MAX_CONNECTIONS, problems)
        capping_mode = _choice(extra, "capping_mode", "throttle", CAPPING_MODES, problems)
        auth_type = _choice(extra, "auth_type", "none", AUTH_TYPES, problems)
        api_key_in = _choice(extra, "api_key_in", "header", API_KEY_LOCATIONS, problems)
        headers = _headers(extra.get("headers"), problems)
        verify_ssl = _boolean(extra, "verify_ssl", True, problems)
        allow_redirects = _boolean(extra, "allow_redirects", False, problems)
        api_key_name = extra.get("api_key_name")
        redis_url = _redis_url(extra.get("redis_url"), problems)

        if auth_type == "basic" and not login:
            problems.append("login: basic auth needs a login (and the password field)")
        if auth_type in ("api_key", "bearer") and not password:
            problems.append(f"password: {auth_type} auth needs the secret in the password field")
        if auth_type == "api_key" and not api_key_name:
            problems.append("extra 'api_key_name': api_key auth needs the header or query name")

        token = None
        if auth_type == "token_endpoint":
            token = _token_settings(extra, base_url, problems)
        client_cert = _pem(extra, "client_cert", "CERTIFICATE", problems)
        client_key = _pem(extra, "client_key", "PRIVATE KEY", problems)
        ca_bundle = _pem(extra, "ca_bundle", "CERTIFICATE", problems)
        if bool(client_cert) != bool(client_key):
            problems.append(
                "extras 'client_cert' and 'client_key': mTLS needs both the client "
                "certificate and its private key"
            )
        client_key_password = _text(extra, "client_key_password")
        if client_key and _is_encrypted_key(client_key) and not client_key_password:
            # Without a password OpenSSL would prompt on the terminal, or fail with OSError.
            problems.append(
                "extra 'client_key_password': the client key is encrypted; set its password "
                "in client_key_password, or paste an unencrypted key"
            )
        proxy_url = _proxy_url(extra.get("proxy_url"), problems)

        if problems:
            raise EndpointConfigError(conn_id, problems)

        return cls(
            conn_id=conn_id,
            base_url=base_url,
            timeout=timeout,
            calls_per_period=calls,
            period_seconds=period,
            max_connections=max_connections,
            capping_mode=capping_mode,
            headers=headers,
            auth_type=auth_type,
            login=login or None,
            secret=password or None,
            api_key_name=str(api_key_name) if api_key_name else None,
            api_key_in=api_key_in,
            verify_ssl=verify_ssl,
            allow_redirects=allow_redirects,
            redis_url=redis_url,
            token=token,
            client_cert=client_cert,
            client_key=client_key,
            client_key_password=client_key_password,
            ca_bundle=ca_bundle,
            proxy_url=proxy_url,
            proxy_login=_text(extra, "proxy_login"),
            proxy_password=_text(extra, "proxy_password"),
        )


CONN_TYPE = "custom_action"
_FORM_PREFIX = f"extra__{CONN_TYPE}__"


def normalize_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Return the extras without the UI form's ``extra__custom_action__`` prefix and empty values.

    The connection form saves a field the user left blank as an empty string or null;
    both mean "use the default".
    """
    normalized: dict[str, Any] = {}
    for key, value in extra.items():
        name = key.removeprefix(_FORM_PREFIX)
        if value is None or value == "":
            continue
        normalized[name] = value
    return normalized


def _base_url(host: str | None, schema: str | None, port: int | None, problems: list[str]) -> str:
    """Return the base URL: ``host`` when it is a full URL, else ``schema://host:port``."""
    if not host:
        problems.append("host: missing; set the base URL, for example https://api.example.com/v1")
        return ""

    url = host if "://" in host else f"{schema or 'https'}://{host}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        problems.append(f"host: scheme {parts.scheme!r} is not supported; use http or https")
    if not parts.hostname:
        problems.append(f"host: {host!r} names no host")
    if parts.query or parts.fragment:
        problems.append(f"host: {host!r} must not contain a query or fragment")
    if port and parts.port is None:
        url = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return url.rstrip("/")


def _positive_number(
    extra: Mapping[str, Any], key: str, default: float, problems: list[str]
) -> float:
    value = extra.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(f"extra {key!r}: {value!r} is not a number")
        return default
    if not math.isfinite(number) or number <= 0:
        problems.append(f"extra {key!r}: {value!r} must be a number above 0")
        return default
    return number


def _positive_int(extra: Mapping[str, Any], key: str, default: int, problems: list[str]) -> int:
    value = extra.get(key, default)
    if isinstance(value, bool):
        problems.append(f"extra {key!r}: {value!r} is not a whole number")
        return default
    if isinstance(value, float) and value.is_integer():
        # JSON writers may store a whole number as 10.0.
        value = int(value)
    try:
        number = int(str(value))
    except ValueError:
        problems.append(f"extra {key!r}: {value!r} is not a whole number")
        return default
    if number < 1:
        problems.append(f"extra {key!r}: {value!r} must be 1 or more")
        return default
    return number


def _choice(
    extra: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...], problems: list[str]
) -> str:
    value = extra.get(key, default)
    if value not in allowed:
        problems.append(f"extra {key!r}: {value!r} is not one of {', '.join(allowed)}")
        return default
    return str(value)


def _boolean(extra: Mapping[str, Any], key: str, default: bool, problems: list[str]) -> bool:
    value = extra.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.append(f"extra {key!r}: {value!r} is not true or false")
    return default


def _headers(value: Any, problems: list[str], key: str = "headers") -> dict[str, str]:
    document = _json_object(value, key, problems)
    if document is None:
        return {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in document.items()):
        problems.append(f"extra {key!r}: must map header names to string values")
        return {}
    return dict(document)


def _json_object(value: Any, key: str, problems: list[str]) -> dict[str, Any] | None:
    """Return a JSON object given as a mapping or as JSON text, or None when unset or invalid."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            problems.append(f"extra {key!r}: not a JSON object")
            return None
    if not isinstance(value, Mapping):
        problems.append(f"extra {key!r}: must be a JSON object")
        return None
    return dict(value)


def _text(extra: Mapping[str, Any], key: str) -> str | None:
    value = extra.get(key)
    return str(value) if value is not None else None


def _token_settings(
    extra: Mapping[str, Any], base_url: str, problems: list[str]
) -> TokenEndpointSettings | None:
    """Check the token_* extras of token_endpoint auth and return them as settings."""
    url = _token_url(extra.get("token_url"), base_url, problems)
    method = _choice(extra, "token_method", "POST", TOKEN_METHODS, problems)
    body_format = _choice(extra, "token_body_format", "form", TOKEN_BODY_FORMATS, problems)
    body = _json_object(extra.get("token_body"), "token_body", problems) or {}
    headers = _headers(extra.get("token_headers"), problems, "token_headers")
    placement = _choice(extra, "token_placement", "bearer", TOKEN_PLACEMENTS, problems)
    name = _text(extra, "token_name")
    ttl = _positive_number(extra, "token_ttl_seconds", DEFAULT_TOKEN_TTL_SECONDS, problems)
    margin = _non_negative_number(
        extra, "token_safety_margin_seconds", DEFAULT_TOKEN_SAFETY_MARGIN_SECONDS, problems
    )
    expires_in_path = _text(extra, "token_expires_in_path")
    expires_at_path = _text(extra, "token_expires_at_path")

    if (method == "GET" or body_format == "form") and _is_nested(body):
        problems.append(
            "extra 'token_body': a form body or GET query has flat fields only; "
            "set token_body_format to json for nested fields"
        )
    _check_placeholders(body, "token_body", problems)
    _check_placeholders(headers, "token_headers", problems)
    if placement in ("header", "query") and not name:
        problems.append(f"extra 'token_name': token_placement {placement!r} needs the name")
    if expires_in_path and expires_at_path:
        problems.append(
            "extras 'token_expires_in_path' and 'token_expires_at_path': set at most one"
        )

    if url is None:
        return None
    return TokenEndpointSettings(
        url=url,
        method=method,
        body_format=body_format,
        body=body,
        headers=headers,
        token_path=_text(extra, "token_path"),
        placement=placement,
        name=name,
        ttl_seconds=ttl,
        expires_in_path=expires_in_path,
        expires_at_path=expires_at_path,
        safety_margin_seconds=margin,
        client_secret=_text(extra, "token_client_secret"),
    )


def _token_url(value: Any, base_url: str, problems: list[str]) -> str | None:
    if not value:
        problems.append(
            "extra 'token_url': token_endpoint auth needs the token endpoint URL "
            "(https://auth.example.com/oauth/token) or a path on the base URL (/auth/token)"
        )
        return None
    text = str(value)
    if text.startswith("/"):
        origin = urlsplit(base_url)
        return f"{origin.scheme}://{origin.netloc}{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            f"extra 'token_url': {_without_userinfo(text)!r} is not an http(s) URL with a host, "
            "nor a path "
            "starting with /"
        )
        return None
    return text


def _non_negative_number(
    extra: Mapping[str, Any], key: str, default: float, problems: list[str]
) -> float:
    value = extra.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(f"extra {key!r}: {value!r} is not a number")
        return default
    if not math.isfinite(number) or number < 0:
        problems.append(f"extra {key!r}: {value!r} must be a number of 0 or more")
        return default
    return number


def _is_nested(document: Mapping[str, Any]) -> bool:
    return any(isinstance(value, (Mapping, list)) for value in document.values())


def _check_placeholders(document: Any, key: str, problems: list[str]) -> None:
    """Report placeholders other than $login, $password and $client_secret.

    The message names the placeholder only, because the rest of the text may be a
    secret typed in directly.
    """
    for text in _strings(document):
        unknown = _unknown_placeholders(text)
        if unknown:
            problems.append(
                f"extra {key!r}: unknown placeholder {', '.join(unknown)}; use $login, "
                "$password or $client_secret, and $$ for a literal $"
            )


def _unknown_placeholders(text: str) -> list[str]:
    """Return each $name, ${name} or lone $ in ``text`` that is not a known placeholder."""
    unknown: list[str] = []
    for match in Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if match.group("invalid") is not None:
            unknown.append("'$' not followed by a name")
        elif name is not None and name not in TOKEN_PLACEHOLDERS:
            unknown.append(f"${name}")
    return unknown


def _strings(document: Any) -> list[str]:
    if isinstance(document, str):
        return [document]
    if isinstance(document, Mapping):
        return [text for value in document.values() for text in _strings(value)]
    if isinstance(document, list):
        return [text for value in document for text in _strings(value)]
    return []


def _pem(extra: Mapping[str, Any], key: str, kind: str, problems: list[str]) -> str | None:
    """Return PEM text with real line breaks, or None; report text that is not PEM.

    A one-line form field may carry the line breaks as the two characters ``\\n``.
    """
    value = extra.get(key)
    if value is None:
        return None
    text = str(value).replace("\\n", "\n").strip()
    if not re.search(rf"-----BEGIN [A-Z ]*{kind}-----", text):
        problems.append(
            f"extra {key!r}: not PEM text; paste the {kind} including its "
            f"-----BEGIN ...----- and -----END ...----- lines (file paths are not read)"
        )
        return None
    return text + "\n"


def _is_encrypted_key(pem: str) -> bool:
    """Return True for a PKCS#8 encrypted key or a traditional key with Proc-Type ENCRYPTED."""
    return "-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or "Proc-Type: 4,ENCRYPTED" in pem


def _proxy_url(value: Any, problems: list[str]) -> str | None:
    """Return a checked http(s)://host:port proxy URL, or None when unset or invalid.

    Messages show the URL without its user info, because it may hold a password.
    """
    if value is None:
        return None
    text = str(value)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        problems.append(
            f"extra 'proxy_url': {_without_userinfo(text)!r} is not a valid URL; "
            "use http://host:port"
        )
        return None
    if parts.scheme not in ("http", "https"):
        problems.append(
            f"extra 'proxy_url': scheme {parts.scheme!r} is not supported; use an HTTP proxy "
            "as http://host:port (or https://host:port)"
        )
        return None
    if not parts.hostname:
        problems.append(
            f"extra 'proxy_url': {_without_userinfo(text)!r} names no host; use http://host:port"
        )
        return None
    if parts.username or parts.password:
        problems.append(
            "extra 'proxy_url': must not contain credentials; put them in proxy_login and "
            "proxy_password"
        )
        return None
    if port is None:
        problems.append(f"extra 'proxy_url': {text!r} names no port; use http://host:port")
        return None
    return text


def _redis_url(value: Any, problems: list[str]) -> str | None:
    """Return a checked redis:// or rediss:// URL, or None when unset or invalid.

    The URL may hold a password, so no message shows it.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(
            f"extra 'redis_url': a {type(value).__name__} is not a URL; "
            "use redis://host:port/db or rediss://host:port/db"
        )
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        problems.append(
            "extra 'redis_url': not a valid URL (check the brackets around an IPv6 "
            "address and that the port is a number from 0 to 65535); use redis://host:port/db"
        )
        return None
    if parts.scheme not in ("redis", "rediss"):
        problems.append(
            f"extra 'redis_url': scheme {parts.scheme!r} is not supported; "
            "use redis://host:port/db or rediss://host:port/db"
        )
        return None
    if not parts.hostname:
        problems.append("extra 'redis_url': names no host; use redis://host:port/db")
        return None
    return value


def _without_userinfo(text: str) -> str:
    """Return a URL text with anything before an '@' in its authority replaced by ***."""
    scheme, separator, rest = text.rpartition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{separator}{authority}{slash}{path}"
