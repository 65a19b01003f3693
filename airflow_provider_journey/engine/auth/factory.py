"""Choose the authenticator that an endpoint connection's ``auth_type`` names."""

from __future__ import annotations

import aiohttp
from yarl import URL

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine.auth.base import Authenticator, secret_forms
from airflow_provider_journey.engine.auth.static import NoAuth, StaticHeaderAuth, StaticQueryAuth
from airflow_provider_journey.engine.auth.token import TokenEndpointAuth


def make_authenticator(settings: EndpointSettings) -> Authenticator:
    """Build the authenticator that the endpoint connection's ``auth_type`` selects.

    Its ``secrets`` cover the connection's other secrets too (client key, proxy
    password, client secret), so no message shows any of them.
    """
    secret = settings.secret or ""
    others = settings.secrets

    if settings.auth_type == "basic":
        header = aiohttp.BasicAuth(settings.login or "", secret).encode()
        encoded = header.split(" ", 1)[1]
        return StaticHeaderAuth("Authorization", header, secret_forms(*others, encoded))

    if settings.auth_type == "bearer":
        return StaticHeaderAuth("Authorization", f"Bearer {secret}", secret_forms(*others))

    if settings.auth_type == "api_key":
        name = settings.api_key_name or ""
        if settings.api_key_in == "query":
            # The form yarl writes into the URL, which a server may echo back.
            query = URL("http://localhost/").with_query([(name, secret)]).raw_query_string
            in_url = query.partition("=")[2]
            return StaticQueryAuth(name, secret, secret_forms(*others, in_url))
        return StaticHeaderAuth(name, secret, secret_forms(*others))

    if settings.auth_type == "token_endpoint":
        return TokenEndpointAuth(settings)

    if settings.auth_type == "none":
        return NoAuth(secret_forms(*others))

    raise ValueError(
        f"Endpoint connection {settings.conn_id!r}: auth_type {settings.auth_type!r} is not "
        "supported by the sending engine"
    )
