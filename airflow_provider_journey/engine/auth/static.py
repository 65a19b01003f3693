"""Authentication of calls to an endpoint, from the endpoint connection's settings.

An ``Authenticator`` adds its credential to each request and, after a 401, reports
whether a refreshed credential makes one repeat worthwhile. The static modes here
(none, basic, bearer, api_key) never refresh, so a token-endpoint mode can be added
as another implementation.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Protocol
from urllib.parse import quote, quote_plus

import aiohttp
from yarl import URL

from airflow_provider_journey.endpoint import EndpointSettings

REDACTED = "***"


class Authenticator(Protocol):
    """Adds a credential to requests and reports the values that must never be shown."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the credential that could appear in a response or an error text."""
        ...

    async def apply(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        query: list[tuple[str, str]],
    ) -> None:
        """Add the credential to ``headers`` or ``query`` in place."""
        ...

    async def on_unauthorized(self) -> bool:
        """Refresh the credential after a 401; return True when one repeat is worthwhile."""
        ...


class NoAuth:
    """Sends requests without a credential."""

    secrets: tuple[str, ...] = ()

    async def apply(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        query: list[tuple[str, str]],
    ) -> None:
        return None

    async def on_unauthorized(self) -> bool:
        return False


class StaticHeaderAuth:
    """Sets one header to a fixed credential (basic, bearer or an API key header)."""

    def __init__(self, name: str, value: str, secrets: tuple[str, ...]) -> None:
        self._name = name
        self._value = value
        self.secrets = secrets

    async def apply(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        query: list[tuple[str, str]],
    ) -> None:
        headers[self._name] = self._value

    async def on_unauthorized(self) -> bool:
        return False


class StaticQueryAuth:
    """Adds a fixed API key as a query parameter."""

    def __init__(self, name: str, value: str, secrets: tuple[str, ...]) -> None:
        self._name = name
        self._value = value
        self.secrets = secrets

    async def apply(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        query: list[tuple[str, str]],
    ) -> None:
        query.append((self._name, self._value))

    async def on_unauthorized(self) -> bool:
        return False


def make_authenticator(settings: EndpointSettings) -> Authenticator:
    """Build the authenticator that the endpoint connection's ``auth_type`` selects."""
    secret = settings.secret or ""

    if settings.auth_type == "basic":
        header = aiohttp.BasicAuth(settings.login or "", secret).encode()
        encoded = header.split(" ", 1)[1]
        return StaticHeaderAuth("Authorization", header, secret_forms(secret, encoded))

    if settings.auth_type == "bearer":
        return StaticHeaderAuth("Authorization", f"Bearer {secret}", secret_forms(secret))

    if settings.auth_type == "api_key":
        name = settings.api_key_name or ""
        if settings.api_key_in == "query":
            # The form yarl writes into the URL, which a server may echo back.
            query = URL("http://localhost/").with_query([(name, secret)]).raw_query_string
            in_url = query.partition("=")[2]
            return StaticQueryAuth(name, secret, secret_forms(secret, in_url))
        return StaticHeaderAuth(name, secret, secret_forms(secret))

    if settings.auth_type == "none":
        return NoAuth()

    raise ValueError(
        f"Endpoint connection {settings.conn_id!r}: auth_type {settings.auth_type!r} is not "
        "supported by the sending engine"
    )


def secret_forms(*values: str) -> tuple[str, ...]:
    """Return each secret with its URL-encoded and JSON-escaped forms, longest first.

    A server that echoes a request may return the credential in any of these forms.
    Longer forms come first, so replacing a shorter form cannot leave part of a longer one.
    """
    forms: set[str] = set()
    for value in values:
        if not value:
            continue
        forms.add(value)
        forms.add(quote(value, safe=""))
        forms.add(quote(value, safe="/"))
        forms.add(quote_plus(value, safe=""))
        forms.add(json.dumps(value)[1:-1])
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
