"""Provider registration and CustomActionHook, through Airflow's own machinery."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pytest_httpserver import HTTPServer

from airflow_provider_journey.exceptions import EndpointConfigError
from airflow_provider_journey.hooks.custom_action import CustomActionHook


def airflow_cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_providers_list_shows_package():
    assert "airflow-provider-journey" in airflow_cli("providers", "list")


def test_providers_hooks_shows_connection_type():
    output = airflow_cli("providers", "hooks")
    assert "custom_action" in output


def test_connection_form_declares_own_fields():
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    assert "extra__custom_action__calls_per_period" in widgets
    assert "extra__custom_action__auth_type" in widgets


def test_connection_form_relabels_host_as_base_url():
    from airflow.providers_manager import ProvidersManager

    behaviour = ProvidersManager().field_behaviours["custom_action"]
    assert behaviour["relabeling"]["host"] == "Base URL"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> None:
    fields.setdefault("conn_type", "custom_action")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_hook_reads_settings_from_env_connection(monkeypatch):
    set_connection(monkeypatch, "push_api", host="http://127.0.0.1:9", extra={"timeout": 7})
    settings = CustomActionHook("push_api").settings
    assert settings.timeout == 7.0


def test_hook_missing_connection_says_how_to_add(monkeypatch):
    with pytest.raises(EndpointConfigError, match="AIRFLOW_CONN_NOWHERE"):
        _ = CustomActionHook("nowhere").settings


def test_hook_wrong_conn_type_rejected(monkeypatch):
    set_connection(monkeypatch, "plain_http", conn_type="http", host="http://127.0.0.1:9")
    with pytest.raises(EndpointConfigError, match="conn_type is 'http'"):
        _ = CustomActionHook("plain_http").settings


def test_test_connection_reaches_server(monkeypatch, httpserver: HTTPServer):
    httpserver.expect_request("/v1", method="HEAD").respond_with_data("")
    set_connection(monkeypatch, "reachable", host=httpserver.url_for("/v1"))
    ok, message = CustomActionHook("reachable").test_connection()
    assert ok, message


def test_test_connection_reports_refused_port(monkeypatch, unused_port):
    set_connection(monkeypatch, "refused", host=f"http://127.0.0.1:{unused_port}")
    ok, message = CustomActionHook("refused").test_connection()
    assert not ok
    assert "is not reachable" in message


def test_test_connection_reports_invalid_settings(monkeypatch):
    set_connection(monkeypatch, "bad_extra", host="http://127.0.0.1:9", extra={"api_version": 2})
    ok, message = CustomActionHook("bad_extra").test_connection()
    assert not ok
    assert "api_version" in message


def test_password_is_masked_when_read(monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact

    secret = "tok-masked-123456"
    set_connection(
        monkeypatch,
        "masked",
        host="http://127.0.0.1:9",
        password=secret,
        extra={"auth_type": "bearer"},
    )
    _ = CustomActionHook("masked").settings
    assert secret not in str(redact(f"Authorization: Bearer {secret}"))


assert os.environ["AIRFLOW_HOME"]


def test_form_defaults_survive_secret_masking():
    """The api-server masks values of fields named like secrets; none may carry a default."""
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

    from airflow_provider_journey.get_provider_info import get_provider_info

    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    masked_with_default = [
        name
        for name, field in fields.items()
        if "default" in field["schema"] and should_hide_value_for_key(name)
    ]
    assert masked_with_default == []
