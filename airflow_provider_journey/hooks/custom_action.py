"""CustomActionHook: reads an endpoint connection and tests it."""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_journey.endpoint import CONN_TYPE, EndpointSettings
from airflow_provider_journey.exceptions import EndpointConfigError


class CustomActionHook(BaseHook):
    """Read an endpoint connection of type ``custom_action`` into checked settings.

    Secrets are read only from the Connection (the password field) and are registered
    with Airflow's secret masker as soon as they are read.

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
                [
                    "connection not found; add it in the Airflow UI (type 'Custom action "
                    "endpoint'), with `airflow connections add`, or as "
                    f"AIRFLOW_CONN_{conn_id.upper()}"
                ],
            ) from None

        if conn.password:
            mask_secret(conn.password)
        if conn.conn_type and conn.conn_type != CONN_TYPE:
            raise EndpointConfigError(
                conn_id,
                [f"conn_type is {conn.conn_type!r}; an endpoint connection has type {CONN_TYPE!r}"],
            )

        return EndpointSettings.from_connection_fields(
            conn_id,
            host=conn.host,
            schema=conn.schema,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Check the settings and that the base URL answers; used by the UI's Test button.

        Any HTTP answer, even 404, shows that the endpoint is reachable; only a
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


async def _probe(settings: EndpointSettings) -> int:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.head(settings.base_url, ssl=settings.verify_ssl, allow_redirects=True) as response,
    ):
        return response.status


def mask_secret(value: str) -> None:
    """Register a secret with Airflow's secret masker so no log line shows it."""
    from airflow.sdk.log import mask_secret as _mask

    _mask(value)
