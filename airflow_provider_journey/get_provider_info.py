"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

The endpoint connection form is declared here (``conn-fields`` and
``ui-field-behaviour``): Airflow 3 builds the connection form in its UI from this
dictionary alone, without importing the hook.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_journey.endpoint import (
    API_KEY_LOCATIONS,
    AUTH_TYPES,
    CAPPING_MODES,
    CONN_TYPE,
    DEFAULT_CALLS_PER_PERIOD,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PERIOD_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TOKEN_SAFETY_MARGIN_SECONDS,
    DEFAULT_TOKEN_TTL_SECONDS,
    TOKEN_BODY_FORMATS,
    TOKEN_METHODS,
    TOKEN_PLACEMENTS,
)

VERSION = "0.1.0"


def _connection_form_fields() -> dict[str, Any]:
    """Return the extra fields of the endpoint connection form, keyed by extra name."""
    return {
        "auth_type": {
            "label": "Authentication",
            "description": "none, basic (login and password), api_key (password is the key), "
            "bearer (password is the token) or token_endpoint (fetch a token with the "
            "token_* fields below).",
            "schema": {"type": ["string", "null"], "enum": list(AUTH_TYPES), "default": "none"},
        },
        "api_key_name": {
            "label": "API key name",
            "description": "api_key: name of the header or query parameter that carries the key.",
            "schema": {"type": ["string", "null"]},
        },
        "api_key_in": {
            "label": "API key location",
            "description": "api_key: send the key in a header or a query parameter.",
            "schema": {
                "type": ["string", "null"],
                "enum": list(API_KEY_LOCATIONS),
                "default": "header",
            },
        },
        "timeout": {
            "label": "Timeout (seconds)",
            "description": "Per-call timeout in seconds; every call has one.",
            "schema": {
                "type": ["number", "null"],
                "minimum": 1,
                "default": DEFAULT_TIMEOUT_SECONDS,
            },
        },
        "calls_per_period": {
            "label": "Capping: calls per period",
            "description": "At most this many calls per sliding window, shared by every action "
            "and task that uses this connection. Retries count.",
            "schema": {
                "type": ["integer", "null"],
                "minimum": 1,
                "default": DEFAULT_CALLS_PER_PERIOD,
            },
        },
        "period_seconds": {
            "label": "Capping: period (seconds)",
            "description": "Length of the capping window in seconds.",
            "schema": {
                "type": ["number", "null"],
                "minimum": 0.001,
                "default": DEFAULT_PERIOD_SECONDS,
            },
        },
        "capping_mode": {
            "label": "Capping: over the limit",
            "description": "throttle: wait for a free slot. reject: end the call as 'capped' "
            "without sending it.",
            "schema": {
                "type": ["string", "null"],
                "enum": list(CAPPING_MODES),
                "default": "throttle",
            },
        },
        "max_connections": {
            "label": "Maximum open connections",
            "description": "At most this many connections to the endpoint at once.",
            "schema": {
                "type": ["integer", "null"],
                "minimum": 1,
                "default": DEFAULT_MAX_CONNECTIONS,
            },
        },
        "headers": {
            "label": "Default headers (JSON)",
            "description": "Headers sent with every call, as a JSON object, "
            'such as {"X-Client": "journeys"}.',
            "schema": {"type": ["string", "null"]},
        },
        "verify_ssl": {
            "label": "Verify TLS certificate",
            "description": "Verify the server's certificate (recommended).",
            "schema": {"type": ["boolean", "null"], "default": True},
        },
        "allow_redirects": {
            "label": "Follow redirects for POST/PUT/PATCH/DELETE",
            "description": "Redirects are always followed for GET.",
            "schema": {"type": ["boolean", "null"], "default": False},
        },
        "redis_url": {
            "label": "Capping store (Redis URL)",
            "description": "redis://host:port/db: share the capping across tasks, processes and "
            "workers. Empty: each process caps on its own, in memory.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        **_token_endpoint_fields(),
        **_tls_and_proxy_fields(),
    }


def _text_field(label: str, description: str, *, secret: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if secret:
        schema["format"] = "password"
    return {"label": label, "description": description, "schema": schema}


def _choice_field(label: str, description: str, choices: tuple[str, ...]) -> dict[str, Any]:
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["string", "null"], "enum": list(choices), "default": choices[0]},
    }


def _token_endpoint_fields() -> dict[str, Any]:
    """Return the form fields of token_endpoint authentication."""
    return {
        "token_url": _text_field(
            "Token endpoint URL",
            "token_endpoint: full URL, or a path on the base URL such as /auth/token.",
        ),
        "token_method": _choice_field(
            "Token request method", "token_endpoint: POST or GET.", TOKEN_METHODS
        ),
        "token_body_format": _choice_field(
            "Token request body format",
            "token_endpoint: form (application/x-www-form-urlencoded) or json. GET sends "
            "the fields as query parameters.",
            TOKEN_BODY_FORMATS,
        ),
        "token_body": _text_field(
            "Token request fields (JSON)",
            'token_endpoint: a JSON object such as {"grant_type": "client_credentials", '
            '"client_id": "$login", "client_secret": "$client_secret"}. $login, $password '
            "and $client_secret are replaced by the connection's login, password and "
            "token client secret. JSON bodies may nest objects.",
        ),
        "token_headers": _text_field(
            "Token request headers (JSON)", "token_endpoint: headers of the token request."
        ),
        "token_client_secret": _text_field(
            "Token client secret",
            "token_endpoint: the OAuth client secret, used as $client_secret.",
            secret=True,
        ),
        "token_path": _text_field(
            "Token JSON path",
            "token_endpoint: where the token is in the JSON response, such as access_token "
            "or data.id_token. Empty: the whole response body is the token.",
        ),
        "token_placement": _choice_field(
            "Token placement",
            "token_endpoint: bearer (Authorization: Bearer <token>), a named header, or a "
            "named query parameter.",
            TOKEN_PLACEMENTS,
        ),
        "token_name": _text_field(
            "Token header or query name", "token_endpoint: the name for header or query placement."
        ),
        "token_ttl_seconds": {
            "label": "Token lifetime (seconds)",
            "description": "token_endpoint: how long a token is used when no expiry path is set.",
            "schema": {
                "type": ["number", "null"],
                "minimum": 1,
                "default": DEFAULT_TOKEN_TTL_SECONDS,
            },
        },
        "token_expires_in_path": _text_field(
            "Token expires-in JSON path",
            "token_endpoint: JSON path of the lifetime in seconds, such as expires_in.",
        ),
        "token_expires_at_path": _text_field(
            "Token expires-at JSON path",
            "token_endpoint: JSON path of the expiry time, as Unix seconds or ISO 8601.",
        ),
        "token_safety_margin_seconds": {
            "label": "Token safety margin (seconds)",
            "description": "token_endpoint: renew the token this many seconds before it expires.",
            "schema": {
                "type": ["number", "null"],
                "minimum": 0,
                "default": DEFAULT_TOKEN_SAFETY_MARGIN_SECONDS,
            },
        },
    }


def _tls_and_proxy_fields() -> dict[str, Any]:
    """Return the form fields of client certificates, CA bundle and proxy."""
    return {
        "client_cert": _text_field(
            "Client certificate (PEM)",
            "mTLS: the client certificate as PEM text, including the BEGIN and END lines.",
        ),
        "client_key": _text_field(
            "Client private key (PEM)",
            "mTLS: the certificate's private key as PEM text.",
            secret=True,
        ),
        "client_key_password": _text_field(
            "Client key password", "mTLS: password of an encrypted private key.", secret=True
        ),
        "ca_bundle": _text_field(
            "CA bundle (PEM)",
            "CA certificates that sign the server certificate, as PEM text. Empty: the "
            "system trust store.",
        ),
        "proxy_url": _text_field(
            "Proxy URL", "HTTP proxy for calls and token requests, such as http://proxy:3128."
        ),
        "proxy_login": _text_field("Proxy login", "User name for the proxy."),
        "proxy_password": _text_field("Proxy password", "Password for the proxy.", secret=True),
    }


# Substrings of field names whose values Airflow's secret masker hides, from
# DEFAULT_SENSITIVE_FIELDS in Airflow 3.3.2 (airflow.sdk._shared.secrets_masker).
_MASKED_NAME_PARTS = (
    "access_key", "access_token", "api_key", "apikey", "auth_header", "authorization",
    "bearer", "connection_string", "dsn", "passphrase", "passwd", "password",
    "private_key", "proxy", "proxies", "secret", "service_account", "service_key",
    "token", "keyfile_dict", "webhook_url",
)  # fmt: skip


def _without_masked_defaults(fields: dict[str, Any]) -> dict[str, Any]:
    """Move the default of each field whose name Airflow masks into its description.

    The api-server masks such a field's default as "***" in the connection form, which
    would prefill an invalid value, so these fields get no default in the schema.
    """
    for name, field in fields.items():
        schema = field["schema"]
        if "default" in schema and any(part in name for part in _MASKED_NAME_PARTS):
            default = schema.pop("default")
            field["description"] = f"{field['description']} Default: {default}."
    return fields


def get_provider_info() -> dict[str, Any]:
    """Return the provider info: package, hooks, operators and the endpoint connection form."""
    return {
        "package-name": "airflow-provider-journey",
        "name": "Journey custom actions",
        "description": "Custom actions for customer journeys: one REST call per profile of an "
        "audience, with capping, retries, idempotency and a per-profile outcome.",
        "versions": [VERSION],
        "integrations": [
            {
                "integration-name": "Journey custom actions",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Journey custom actions",
                "python-modules": ["airflow_provider_journey.hooks.custom_action"],
            }
        ],
        "operators": [
            {
                "integration-name": "Journey custom actions",
                "python-modules": [
                    "airflow_provider_journey.operators.custom_action",
                    "airflow_provider_journey.operators.split",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_journey.hooks.custom_action.CustomActionHook",
                "hook-name": "Custom action endpoint",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "Login (basic auth)",
                        "password": "Secret (password, API key, bearer token or token "
                        "endpoint password)",
                    },
                    "placeholders": {
                        "host": "https://api.example.com/v1",
                        "login": "basic auth user name",
                        "password": "stored encrypted, masked in logs",
                    },
                },
                "conn-fields": _without_masked_defaults(_connection_form_fields()),
            }
        ],
    }
