"""EndpointSettings: parsing an endpoint connection's fields."""

from __future__ import annotations

import pytest

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.exceptions import EndpointConfigError


def settings(**fields):
    fields.setdefault("host", "https://api.example.com/v1")
    return EndpointSettings.from_connection_fields("push", **fields)


def test_defaults_follow_design():
    result = settings()
    assert result.timeout == 30.0
    assert result.calls_per_period == 300_000
    assert result.period_seconds == 60.0
    assert result.capping_mode == "throttle"
    assert result.auth_type == "none"


def test_base_url_keeps_static_path():
    assert settings().base_url == "https://api.example.com/v1"


def test_base_url_from_host_schema_and_port():
    result = settings(host="127.0.0.1", schema="http", port=8080)
    assert result.base_url == "http://127.0.0.1:8080"


def test_settings_only_extras_are_never_headers():
    """Public report: connection extras that are settings ended up as HTTP headers."""
    with pytest.raises(EndpointConfigError) as caught:
        settings(extra={"proxies": {"http": "x"}, "api_version": 2, "timeout": 5})
    message = str(caught.value)
    assert "extra 'proxies': unknown setting" in message
    assert "extra 'api_version': unknown setting" in message
    assert len(caught.value.problems) == 2


def test_known_timeout_extra_is_a_setting():
    assert settings(extra={"timeout": 5}).timeout == 5.0


def test_every_problem_reported_at_once():
    with pytest.raises(EndpointConfigError) as caught:
        settings(
            host=None, extra={"timeout": "soon", "capping_mode": "drop", "calls_per_period": 0}
        )
    assert len(caught.value.problems) == 4


def test_form_prefix_and_blank_fields_accepted():
    result = settings(extra={"extra__custom_action__timeout": "12", "calls_per_period": ""})
    assert result.timeout == 12.0
    assert result.calls_per_period == 300_000


def test_unsupported_scheme_rejected():
    with pytest.raises(EndpointConfigError, match="scheme 'ftp' is not supported"):
        settings(host="ftp://files.example.com")


def test_bearer_without_secret_rejected():
    with pytest.raises(EndpointConfigError, match="bearer auth needs the secret"):
        settings(extra={"auth_type": "bearer"})


def test_secret_not_in_repr():
    result = settings(password="s3cret-token-value", extra={"auth_type": "bearer"})
    assert "s3cret-token-value" not in repr(result)


def test_headers_extra_as_json_text():
    result = settings(extra={"headers": '{"X-Client": "journeys"}'})
    assert result.headers == {"X-Client": "journeys"}


def test_headers_extra_must_be_strings():
    with pytest.raises(EndpointConfigError, match="must map header names to string values"):
        settings(extra={"headers": {"X-Count": 3}})
