"""TLS and proxy settings of an endpoint connection, turned into what aiohttp takes."""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from pathlib import Path

import aiohttp

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.exceptions import EndpointConfigError

log = logging.getLogger(__name__)


def ssl_context_for(settings: EndpointSettings) -> ssl.SSLContext:
    """Build the TLS context of a connection: trust, verification and client certificate.

    ``ca_bundle`` replaces the system trust store when set. Raise EndpointConfigError
    when the CA bundle, the client certificate or its key cannot be loaded.
    """
    context = _trust(settings)
    if not settings.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.client_cert and settings.client_key:
        _load_client_certificate(context, settings)
    return context


def warn_if_unverified(settings: EndpointSettings) -> None:
    """Log a warning when the connection turns TLS verification off."""
    if not settings.verify_ssl:
        log.warning(
            "Endpoint connection %r: TLS certificate verification is off (verify_ssl false), "
            "so any server can pose as %s. Set ca_bundle to trust a private CA instead.",
            settings.conn_id,
            settings.base_url,
        )


def proxy_auth(settings: EndpointSettings) -> aiohttp.BasicAuth | None:
    """Return the proxy credentials of a connection, or None."""
    if settings.proxy_login is None and settings.proxy_password is None:
        return None
    return aiohttp.BasicAuth(settings.proxy_login or "", settings.proxy_password or "")


def _trust(settings: EndpointSettings) -> ssl.SSLContext:
    if settings.ca_bundle is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=settings.ca_bundle)
    except (ssl.SSLError, ValueError) as error:
        raise EndpointConfigError(
            settings.conn_id,
            [f"extra 'ca_bundle': the CA certificates cannot be loaded ({_reason(error)})"],
        ) from None


def _load_client_certificate(context: ssl.SSLContext, settings: EndpointSettings) -> None:
    """Load the client certificate and key, which Python's ssl reads from files only.

    The PEM texts go to files readable by this user only, in a fresh temporary
    folder that is removed as soon as they are loaded.
    """
    with tempfile.TemporaryDirectory(prefix="journey-mtls-") as folder:
        cert_file = _private_file(Path(folder) / "client.crt", settings.client_cert or "")
        key_file = _private_file(Path(folder) / "client.key", settings.client_key or "")
        try:
            context.load_cert_chain(cert_file, key_file, password=settings.client_key_password)
        except (ssl.SSLError, ValueError) as error:
            raise EndpointConfigError(
                settings.conn_id,
                [
                    "extras 'client_cert' and 'client_key': the client certificate and key "
                    f"cannot be loaded ({_reason(error)}); check that the key belongs to the "
                    "certificate, and set client_key_password for an encrypted key"
                ],
            ) from None


def _private_file(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None)
    return str(reason) if reason else type(error).__name__
