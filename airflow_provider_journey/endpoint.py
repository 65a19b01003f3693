"""Endpoint settings: what an endpoint connection says about where and how to call.

``EndpointSettings.from_connection_fields`` turns the fields of an Airflow Connection
(host, schema, port, login, password, extra) into checked settings; it imports nothing
from Airflow so the engine can use it alone. Every extra key must be known: a setting
that is not understood is an error, never an HTTP header.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_journey.exceptions import EndpointConfigError

AUTH_TYPES = ("none", "basic", "api_key", "bearer")
CAPPING_MODES = ("throttle", "reject")
API_KEY_LOCATIONS = ("header", "query")

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CALLS_PER_PERIOD = 300_000
DEFAULT_PERIOD_SECONDS = 60.0
DEFAULT_MAX_CONNECTIONS = 100

# Extra keys an endpoint connection understands, with what each sets.
KNOWN_EXTRAS: dict[str, str] = {
    "timeout": "per-call timeout in seconds (default 30)",
    "calls_per_period": "capping: at most this many calls per period (default 300000)",
    "period_seconds": "capping: length of the sliding window in seconds (default 60)",
    "max_connections": "at most this many open connections at once (default 100)",
    "capping_mode": "'throttle' waits for a slot (default), 'reject' ends the call as capped",
    "headers": "default headers sent with every call, as a JSON object",
    "auth_type": "one of none, basic, api_key, bearer (default none)",
    "api_key_name": "api_key auth: header or query parameter name that carries the key",
    "api_key_in": "api_key auth: 'header' (default) or 'query'",
    "verify_ssl": "verify the server's TLS certificate (default true)",
    "allow_redirects": "follow redirects for methods other than GET (default false)",
    "redis_url": "capping store shared by every process: redis:// or rediss:// URL "
    "(default: in memory, per process)",
}


@dataclass(frozen=True)
class EndpointSettings:
    """Checked settings of one endpoint connection.

    ``secret`` is the password field: the basic-auth password, the API key or the
    bearer token, depending on ``auth_type``. It never appears in ``repr``.
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


def _headers(value: Any, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            problems.append("extra 'headers': not a JSON object")
            return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        problems.append("extra 'headers': must map header names to string values")
        return {}
    return dict(value)


def _redis_url(value: Any, problems: list[str]) -> str | None:
    if value is None:
        return None
    scheme = urlsplit(str(value)).scheme if isinstance(value, str) else ""
    if scheme not in ("redis", "rediss"):
        # The URL may hold a password, so the message names the scheme only.
        problems.append(
            f"extra 'redis_url': scheme {scheme!r} is not supported; "
            "use redis://host:port/db or rediss://host:port/db"
        )
        return None
    return str(value)
