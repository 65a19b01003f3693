"""One HTTP attempt and the plain record of how it ended."""

from __future__ import annotations

import asyncio
import enum
import errno
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from airflow_provider_journey.engine.http1 import (
    ConnectError,
    Http1Error,
    Http1Pool,
    InvalidResponseError,
    TlsError,
    header_block,
)
from airflow_provider_journey.engine.response import read_limited

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10
_CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")


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
    max_redirects: int = _MAX_REDIRECTS,
) -> AttemptResult:
    """Send one request through aiohttp and read its body; never raise for a network problem.

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
            max_redirects=max_redirects,
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
        return AttemptResult(AttemptEnd.CONNECTION, message=_tls_message(where, error))
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
        return _cannot_connect(f"{error.host}:{error.port}", error.os_error)
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection before sending a complete response"
    if isinstance(error, OSError) and error.errno == errno.ECONNRESET:
        return f"connection reset by {where}"
    if isinstance(error, aiohttp.ClientPayloadError):
        return f"the response body from {where} was cut off"
    return f"connection to {where} failed ({type(error).__name__})"


async def run_http1_attempt(
    pool: Http1Pool,
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    headers: CIMultiDict[str],
    body: bytes | None,
    allow_redirects: bool,
    timeout: float,
    max_response_bytes: int,
    where: str,
    gate: Callable[[], Awaitable[bool]],
) -> AttemptResult | None:
    """Send one request through the lean HTTP/1.1 pool; never raise for a failed exchange.

    ``url`` already carries the query. ``gate`` takes the capping slot once a connection
    is ready. When it rejects the call, nothing is sent and this returns None, and an
    error of the capping store passes through. A redirect, when allowed, is followed by
    aiohttp from its Location on, with the same rules as ``run_attempt`` and a timeout of
    its own.
    """
    try:
        data = header_block(method, url.raw_path_qs, pool.host_header, headers.items(), body)
        response = await pool.request(
            data + body if body else data, timeout=timeout, max_body=max_response_bytes, gate=gate
        )
        if response is None:
            return None
    except asyncio.TimeoutError:
        return AttemptResult(AttemptEnd.TIMEOUT, retryable=True)
    except TlsError as error:
        return AttemptResult(AttemptEnd.CONNECTION, message=_tls_message(where, error.__cause__))
    except ConnectError as error:
        return AttemptResult(
            AttemptEnd.CONNECTION,
            message=_cannot_connect(f"{error.host}:{error.port}", error.os_error),
            retryable=True,
        )
    except InvalidResponseError as error:
        return AttemptResult(AttemptEnd.CONNECTION, message=str(error))
    except Http1Error as error:
        return AttemptResult(AttemptEnd.CONNECTION, message=str(error), retryable=True)
    except ValueError as error:
        message = f"request could not be sent: {type(error).__name__}: {error}"
        return AttemptResult(AttemptEnd.CLIENT_ERROR, message=message)

    location = response.headers.get("location")
    if allow_redirects and response.status in _REDIRECT_STATUSES and location is not None:
        return await _follow_redirect(
            session,
            method,
            url,
            response.status,
            location,
            headers=headers,
            body=body,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            where=where,
        )

    return AttemptResult(
        AttemptEnd.RESPONSE,
        status=response.status,
        body=response.body,
        retry_after=response.headers.get("retry-after"),
    )


async def _follow_redirect(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    status: int,
    location: str,
    *,
    headers: CIMultiDict[str],
    body: bytes | None,
    timeout: float,
    max_response_bytes: int,
    where: str,
) -> AttemptResult:
    """Send the request that a redirect points to, and follow further ones, through aiohttp.

    It changes the method and drops the body and credentials as aiohttp does between its
    own redirects. A 303, and a 301 or 302 after a POST, becomes a GET without a body. A
    new origin gets no Authorization, Cookie or Proxy-Authorization header.
    """
    try:
        target = URL(location)
    except ValueError:
        return AttemptResult(
            AttemptEnd.CLIENT_ERROR,
            message=f"request could not be sent: {where} redirected to an invalid URL",
        )
    if target.scheme not in ("", "http", "https"):
        return AttemptResult(
            AttemptEnd.CLIENT_ERROR,
            message=f"request could not be sent: {where} redirected to a URL that is not HTTP",
        )
    if not target.is_absolute():
        target = url.join(target)

    headers = headers.copy()
    if status == 303 or (status in (301, 302) and method == "POST"):
        method = "GET"
        body = None
    if target.origin() != url.origin():
        for name in _CREDENTIAL_HEADERS:
            headers.popall(name, None)

    return await run_attempt(
        session,
        method,
        str(target),
        headers=headers,
        query=[],
        body=body,
        allow_redirects=True,
        timeout=aiohttp.ClientTimeout(total=timeout),
        max_response_bytes=max_response_bytes,
        where=where,
        max_redirects=_MAX_REDIRECTS - 1,
    )


def _tls_message(where: str, error: BaseException | None) -> str:
    return (
        f"TLS handshake with {where} failed ({type(error).__name__}); check the server "
        "certificate and the endpoint connection's ca_bundle, client_cert and verify_ssl settings"
    )


def _cannot_connect(target: str, os_error: OSError) -> str:
    if isinstance(os_error, ConnectionRefusedError):
        return f"connection refused by {target}"
    reason = os_error.strerror or type(os_error).__name__
    return f"cannot connect to {target} ({reason})"
