"""One HTTP attempt and the plain record of how it ended."""

from __future__ import annotations

import asyncio
import enum
import errno
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from airflow_provider_journey.engine.response import read_limited


class AttemptEnd(enum.Enum):
    """Kind of ending of one attempt."""

    RESPONSE = "response"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    CLIENT_ERROR = "client_error"


@dataclass(slots=True)
class AttemptResult:
    """The result of one attempt.

    ``body`` is None when the body was over the size limit or no response arrived.
    ``message`` describes a failure below HTTP and may contain a secret from the URL,
    so callers redact it before showing it.
    """

    end: AttemptEnd
    status: int = 0
    body: bytes | None = None
    retry_after: str | None = None
    message: str = ""
    retryable: bool = False


async def run_attempt(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    query: list[tuple[str, str]],
    body: bytes | None,
    allow_redirects: bool,
    timeout: aiohttp.ClientTimeout,
    max_response_bytes: int,
    where: str,
) -> AttemptResult:
    """Send one request and read its body; never raise for a network or HTTP problem.

    ``where`` names the endpoint (host and port) in failure messages.
    """
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            params=query or None,
            data=body,
            allow_redirects=allow_redirects,
            timeout=timeout,
        ) as response:
            content = await read_limited(response, max_response_bytes)
            return AttemptResult(
                AttemptEnd.RESPONSE,
                status=response.status,
                body=content,
                retry_after=response.headers.get("Retry-After"),
            )
    except asyncio.TimeoutError:
        return AttemptResult(AttemptEnd.TIMEOUT, retryable=True)
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as error:
        return AttemptResult(
            AttemptEnd.CONNECTION,
            message=f"TLS handshake with {where} failed ({type(error).__name__}); check the "
            "server certificate and the endpoint connection's ca_bundle, client_cert and "
            "verify_ssl settings",
        )
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
        return AttemptResult(
            AttemptEnd.CONNECTION, message=describe_connection_error(error, where), retryable=True
        )
    except (aiohttp.ClientError, ValueError) as error:
        message = f"request could not be sent: {type(error).__name__}: {error}"
        return AttemptResult(AttemptEnd.CLIENT_ERROR, message=message)


def describe_connection_error(error: Exception, where: str) -> str:
    """Describe a connection failure in plain words, naming the host and port."""
    if isinstance(error, aiohttp.ClientConnectorError):
        target = f"{error.host}:{error.port}"
        os_error = error.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return f"connection refused by {target}"
        reason = os_error.strerror or type(os_error).__name__
        return f"cannot connect to {target} ({reason})"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection before sending a complete response"
    if isinstance(error, OSError) and error.errno == errno.ECONNRESET:
        return f"connection reset by {where}"
    if isinstance(error, aiohttp.ClientPayloadError):
        return f"the response body from {where} was cut off"
    return f"connection to {where} failed ({type(error).__name__})"
