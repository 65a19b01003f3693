"""CustomActionHook: reads an endpoint connection and tests it."""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import Any

import aiohttp
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_journey.endpoint import (
    CONN_TYPE,
    SECRET_EXTRAS,
    EndpointSettings,
    normalize_extra,
)
from airflow_provider_journey.exceptions import EndpointConfigError


class CustomActionHook(BaseHook):
    """Read an endpoint connection of type ``custom_action`` into checked settings.

    Secrets are read only from the Connection: the password field and the secret
    extras (token client secret, client key and its password, proxy password, Redis
    URL). Each is registered with Airflow's secret masker as soon as it is read, and
    so is every token the engine fetches later.

    :param custom_action_conn_id: id of the endpoint connection.
    """

    conn_name_attr = "custom_action_conn_id"
    default_conn_name = "custom_action_default"
    conn_type = CONN_TYPE
    hook_name = "Custom action endpoint"

    def __init__(self, custom_action_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.custom_action_conn_id = custom_action_conn_id

    @cached_property
    def settings(self) -> EndpointSettings:
        """Return the endpoint settings; raise EndpointConfigError listing every problem."""
        conn_id = self.custom_action_conn_id
        try:
            conn = self.get_connection(conn_id)
        except AirflowNotFoundException:
            raise EndpointConfigError(
                conn_id,
                not_found=True,
                problems=[
                    "add it in the Airflow UI (type 'Custom action "
                    "endpoint'), with `airflow connections add`, or as "
                    f"AIRFLOW_CONN_{conn_id.upper()}"
                ],
            ) from None

        extra = conn.extra_dejson
        mask_connection_secrets(conn.password, extra)
        if conn.conn_type and conn.conn_type != CONN_TYPE:
            raise EndpointConfigError(
                conn_id,
                [f"conn_type is {conn.conn_type!r}; an endpoint connection has type {CONN_TYPE!r}"],
            )

        settings = EndpointSettings.from_connection_fields(
            conn_id,
            host=conn.host,
            schema=conn.schema,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            extra=extra,
        )
        _check_tls_material(settings)
        if settings.auth_type == "basic" and settings.secret:
            header = aiohttp.BasicAuth(settings.login or "", settings.secret).encode()
            mask_secret(header.split(" ", 1)[1])
        return settings

    def test_connection(self) -> tuple[bool, str]:
        """Check the settings and that the base URL responds; used by the UI's Test button.

        Any HTTP response, even 404, shows that the endpoint is reachable; only a
        transport failure or invalid settings fail the test.
        """
        try:
            settings = self.settings
        except EndpointConfigError as error:
            return False, str(error)
        try:
            status = asyncio.run(_probe(settings))
        except Exception as error:
            return False, f"{settings.base_url} is not reachable: {type(error).__name__}: {error}"
        return True, f"{settings.base_url} answered HTTP {status}"


def _check_tls_material(settings: EndpointSettings) -> None:
    """Load the CA bundle and client certificate now, so a bad one fails when the hook reads it.

    Text that looks like PEM but cannot be loaded, or a key that does not belong to the
    certificate, raises EndpointConfigError naming the fields.
    """
    if settings.ca_bundle is None and settings.client_cert is None:
        return
    from airflow_provider_journey.engine.tls import ssl_context_for

    ssl_context_for(settings)


async def _probe(settings: EndpointSettings) -> int:
    from airflow_provider_journey.engine.tls import proxy_auth, ssl_context_for

    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    connector = aiohttp.TCPConnector(ssl=ssl_context_for(settings))
    async with (
        aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            proxy=settings.proxy_url,
            proxy_auth=proxy_auth(settings),
        ) as session,
        session.head(settings.base_url, allow_redirects=True) as response,
    ):
        return response.status


def mask_connection_secrets(password: str | None, extra: Any) -> None:
    """Register the password, every secret extra and their encoded forms with the masker.

    The forms cover what a server may echo back: URL-encoded and JSON-escaped. Tokens
    fetched later are registered through the engine's secret observer.
    """
    from airflow_provider_journey.engine.auth import add_secret_observer, secret_forms

    add_secret_observer(mask_secret)
    values = [password] if password else []
    if isinstance(extra, dict):
        normalized = normalize_extra(extra)
        values += [str(normalized[key]) for key in SECRET_EXTRAS if key in normalized]
    for form in secret_forms(*values):
        mask_secret(form)


def mask_secret(value: str) -> None:
    """Register a secret with Airflow's secret masker so no log line shows it."""
    from airflow.sdk.log import mask_secret as _mask

    _mask(value)
