"""What every authenticator offers, and how secrets are kept out of texts.

An ``Authenticator`` adds its credential to each request and, after a 401, reports
whether a refreshed credential makes one repeat worthwhile. Its ``secrets`` are every
form of the credential that a server could echo back, so messages can be redacted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

from airflow_provider_journey.exceptions import JourneyError

log = logging.getLogger(__name__)

REDACTED = "***"

_secret_observers: list[Callable[[str], None]] = []


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


class AuthenticationError(JourneyError):
    """No credential could be obtained for an endpoint connection (a token request failed).

    The message names the connection and the setting to check, and never holds a secret.
    """

    def __init__(self, conn_id: str, detail: str) -> None:
        self.conn_id = conn_id
        self.detail = detail
        super().__init__(f"Endpoint connection {conn_id!r}: {detail}")


def add_secret_observer(observer: Callable[[str], None]) -> None:
    """Call ``observer`` with every secret the engine obtains at run time, such as a token.

    The Airflow hook registers the secret masker here, so the engine itself imports
    nothing from Airflow. Registering the same observer twice has no further effect.
    """
    if observer not in _secret_observers:
        _secret_observers.append(observer)


def announce_secret(value: str) -> None:
    """Pass a new secret to every registered observer."""
    for observer in _secret_observers:
        try:
            observer(value)
        except Exception as error:
            # A broken masker must not stop sending; the value itself is not logged.
            log.warning("A secret observer failed with %s", type(error).__name__)


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



def redact_document(document: Any, secrets: tuple[str, ...]) -> Any:
    """Return a JSON document with every secret replaced in its keys and string values."""
    if not secrets:
        return document
    if isinstance(document, str):
        return redact(document, secrets)
    if isinstance(document, dict):
        return {
            redact(str(key), secrets): redact_document(value, secrets)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [redact_document(value, secrets) for value in document]
    return document
