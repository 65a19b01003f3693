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
)

VERSION = "0.1.0"


def _connection_form_fields() -> dict[str, Any]:
    """Return the extra fields of the endpoint connection form, keyed by extra name."""
    return {
        "auth_type": {
            "label": "Authentication",
            "description": "none, basic (login and password), api_key (password is the key) "
            "or bearer (password is the token).",
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
    }


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
                        "password": "Secret (password, API key or bearer token)",
                    },
                    "placeholders": {
                        "host": "https://api.example.com/v1",
                        "login": "basic auth user name",
                        "password": "stored encrypted, masked in logs",
                    },
                },
                "conn-fields": _connection_form_fields(),
            }
        ],
    }
