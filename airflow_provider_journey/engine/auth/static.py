"""Authenticators with a fixed credential: none, basic, bearer and API key."""

from __future__ import annotations

from collections.abc import MutableMapping


class NoAuth:
    """Sends requests without a credential."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.secrets = secrets

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
