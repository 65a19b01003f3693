"""Token endpoint authentication: fetch a token, cache it per connection, place it on calls.

One ``TokenCache`` exists per endpoint connection and process (see ``token_cache_for``),
and every Sender of that connection shares it. While a token is being fetched, other
calls on the same event loop wait for that fetch instead of starting their own, so a
burst of calls on an expired token makes one token request. Calls on another event
loop (another task in the same process) start at most one fetch of their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import hashlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from string import Template
from typing import Any

import aiohttp
from yarl import URL

from airflow_provider_journey.endpoint import EndpointSettings, TokenEndpointSettings

# A module reference, not names: engine.response imports this package while it loads.
from airflow_provider_journey.engine import response
from airflow_provider_journey.engine.auth.base import (
    AuthenticationError,
    announce_secret,
    secret_forms,
)
from airflow_provider_journey.engine.tls import proxy_auth, ssl_context_for

log = logging.getLogger(__name__)

MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
# After a failed token request, calls reuse that failure for this long instead of
# sending another token request each.
FAILURE_COOLDOWN_SECONDS = 5.0
# Earlier tokens stay in the redaction list, because a late response may echo one.
RECENT_TOKENS = 4

# The generation of the token that ``apply`` put on the current task's request, so
# ``on_unauthorized`` refreshes only when that token is still the cached one.
_generation_used: contextvars.ContextVar[int] = contextvars.ContextVar("token_generation")


@dataclass(frozen=True)
class Token:
    """A fetched token and the monotonic time at which it is renewed."""

    value: str
    renew_at: float
    generation: int


class TokenCache:
    """The current token of one endpoint connection, shared by threads and event loops.

    State changes happen under a thread lock. The in-flight fetch is kept per event loop,
    because an asyncio future can only be awaited on the loop that created it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._generation = 0
        self._in_flight: dict[asyncio.AbstractEventLoop, asyncio.Future[Token]] = {}
        self._failure: tuple[float, str] | None = None
        self.recent: deque[str] = deque(maxlen=RECENT_TOKENS)
        self.fetches = 0

    async def get(self, fetch: Any, conn_id: str) -> Token:
        """Return a valid token, calling ``fetch()`` when none is cached or being fetched."""
        loop = asyncio.get_running_loop()
        with self._lock:
            token = self._token
            if token is not None and time.monotonic() < token.renew_at:
                return token
            self._raise_recent_failure(conn_id)
            waiting = self._in_flight.get(loop)
            if waiting is None:
                future: asyncio.Future[Token] = loop.create_future()
                self._in_flight[loop] = future
        if waiting is not None:
            return await asyncio.shield(waiting)
        return await self._fetch_into(future, fetch, loop)

    async def _fetch_into(
        self, future: asyncio.Future[Token], fetch: Any, loop: asyncio.AbstractEventLoop
    ) -> Token:
        try:
            value, lifetime = await fetch()
        except BaseException as error:
            with self._lock:
                self._in_flight.pop(loop, None)
                if isinstance(error, AuthenticationError):
                    self._failure = (time.monotonic(), error.detail)
            if isinstance(error, AuthenticationError):
                # At most one line per cool-down, because later calls reuse the failure.
                log.warning("%s", error)
            future.set_exception(error)
            # Mark the exception as retrieved when no other call waits for it.
            future.exception()
            raise

        with self._lock:
            self._generation += 1
            self.fetches += 1
            token = Token(value, time.monotonic() + lifetime, self._generation)
            self._token = token
            self._failure = None
            self.recent.append(value)
            self._in_flight.pop(loop, None)
        future.set_result(token)
        return token

    def _raise_recent_failure(self, conn_id: str) -> None:
        if self._failure is None:
            return
        failed_at, detail = self._failure
        if time.monotonic() - failed_at < FAILURE_COOLDOWN_SECONDS:
            raise AuthenticationError(conn_id, detail)

    def invalidate(self, generation: int | None) -> None:
        """Drop the cached token if it is the one of ``generation`` (or any, when None)."""
        with self._lock:
            if self._token is not None and generation in (None, self._token.generation):
                self._token = None


_caches: dict[tuple[str, str], TokenCache] = {}
_caches_lock = threading.Lock()


def token_cache_for(settings: EndpointSettings) -> TokenCache:
    """Return this process's token cache for an endpoint connection, creating it on first use.

    The key holds the connection id and a digest of its token settings and secrets, so a
    changed connection starts with an empty cache.
    """
    client_secret = settings.token.client_secret if settings.token else None
    identity = (settings.token, settings.login, settings.secret, client_secret)
    digest = hashlib.sha256(repr(identity).encode()).hexdigest()
    key = (settings.conn_id, digest)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = TokenCache()
            _caches[key] = cache
        return cache


class TokenEndpointAuth:
    """Places a token from the connection's token endpoint on every call."""

    def __init__(self, settings: EndpointSettings, cache: TokenCache | None = None) -> None:
        if settings.token is None:
            raise ValueError(f"endpoint connection {settings.conn_id!r} has no token settings")
        self._settings = settings
        self._token_settings: TokenEndpointSettings = settings.token
        self._cache = cache if cache is not None else token_cache_for(settings)
        self._static_secrets = settings.secrets
        self._secrets_for: tuple[str, ...] = ()
        self._secrets: tuple[str, ...] = secret_forms(*self._static_secrets)

    @property
    def cache(self) -> TokenCache:
        """The token cache this authenticator shares with others of the same connection."""
        return self._cache

    @property
    def secrets(self) -> tuple[str, ...]:
        recent = tuple(self._cache.recent)
        if recent != self._secrets_for:
            self._secrets_for = recent
            self._secrets = secret_forms(*self._static_secrets, *recent, *_query_forms(recent))
        return self._secrets

    async def apply(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        query: list[tuple[str, str]],
    ) -> None:
        token = await self._cache.get(self._fetch, self._settings.conn_id)
        _generation_used.set(token.generation)

        placement = self._token_settings.placement
        if placement == "bearer":
            headers["Authorization"] = f"Bearer {token.value}"
        elif placement == "header":
            headers[self._token_settings.name or ""] = token.value
        else:
            query.append((self._token_settings.name or "", token.value))

    async def on_unauthorized(self) -> bool:
        self._cache.invalidate(_generation_used.get(None))
        return True

    async def _fetch(self) -> tuple[str, float]:
        """Send the token request; return the token and the seconds it may be used."""
        conn_id = self._settings.conn_id
        status, body = await self._request()
        where = _where(self._token_settings.url)
        if not 200 <= status < 300:
            excerpt = "(body too big)"
            if body is not None:
                excerpt = response.error_body_excerpt(body, self.secrets)
            raise AuthenticationError(
                conn_id,
                f"token endpoint {where} answered HTTP {status}: {excerpt}; check the login, "
                "password, token_client_secret and token_body of the connection",
            )
        if body is None:
            raise AuthenticationError(
                conn_id,
                f"token response from {where} is over {MAX_TOKEN_RESPONSE_BYTES} bytes",
            )

        value, document = read_token(body, self._token_settings, conn_id)
        announce_secret(value)
        lifetime = token_lifetime(document, self._token_settings, conn_id)
        log.info(
            "Endpoint connection %r: fetched a token from %s, renewed in %.0f s",
            conn_id,
            where,
            lifetime,
        )
        return value, lifetime

    async def _request(self) -> tuple[int, bytes | None]:
        settings = self._settings
        token = self._token_settings
        values = {
            "login": settings.login or "",
            "password": settings.secret or "",
            "client_secret": token.client_secret or "",
        }
        body = _fill(token.body, values)
        headers = {name: Template(text).substitute(values) for name, text in token.headers.items()}
        options: dict[str, Any] = {}
        if token.method == "GET":
            options["params"] = {key: str(value) for key, value in body.items()}
        elif token.body_format == "json":
            options["json"] = body
        else:
            options["data"] = {key: str(value) for key, value in body.items()}

        connector = aiohttp.TCPConnector(ssl=ssl_context_for(settings))
        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        try:
            async with (
                aiohttp.ClientSession(
                    connector=connector,
                    timeout=timeout,
                    proxy=settings.proxy_url,
                    proxy_auth=proxy_auth(settings),
                ) as session,
                session.request(token.method, token.url, headers=headers, **options) as answer,
            ):
                return answer.status, await response.read_limited(answer, MAX_TOKEN_RESPONSE_BYTES)
        except asyncio.TimeoutError:
            message = f"token request to {_where(token.url)} timed out after {settings.timeout:g} s"
        except aiohttp.ClientError as error:
            message = f"token request to {_where(token.url)} failed ({type(error).__name__})"
        raise AuthenticationError(
            settings.conn_id, f"{message}; check token_url and that the token endpoint is up"
        )


def read_token(
    body: bytes, settings: TokenEndpointSettings, conn_id: str
) -> tuple[str, Any]:
    """Return the token from a token response body and the parsed JSON document, if any."""
    is_json, document = response.parse_json(body)
    if settings.token_path is None:
        value = body.decode("utf-8", errors="replace").strip()
        if is_json and isinstance(document, str):
            value = document
    else:
        if not is_json:
            raise AuthenticationError(
                conn_id,
                f"the token response is not JSON, so extra 'token_path' "
                f"({settings.token_path!r}) cannot be read; leave token_path empty when the "
                "whole body is the token",
            )
        found = response.FieldPath.parse(settings.token_path).lookup(document)
        if found is response._MISSING or not isinstance(found, str):
            raise AuthenticationError(
                conn_id,
                f"the token response has no string at extra 'token_path' "
                f"({settings.token_path!r}); its top-level fields are {_field_names(document)}",
            )
        value = found
    if not value:
        raise AuthenticationError(conn_id, "the token endpoint returned an empty token")
    return value, document if is_json else None


def token_lifetime(document: Any, settings: TokenEndpointSettings, conn_id: str) -> float:
    """Return the seconds a token is used: its expiry (or the fixed TTL) minus the margin.

    When the margin is as long as the token's whole lifetime, the token is used for half
    of its lifetime instead, so it is not fetched again for every call.
    """
    if settings.expires_in_path:
        raw = _expiry_value(document, settings.expires_in_path, "token_expires_in_path", conn_id)
        seconds = _number(raw)
        if seconds is None:
            raise AuthenticationError(
                conn_id,
                f"extra 'token_expires_in_path' ({settings.expires_in_path!r}) is "
                f"{type(raw).__name__} {raw!r} in the token response, not a number of seconds",
            )
    elif settings.expires_at_path:
        raw = _expiry_value(document, settings.expires_at_path, "token_expires_at_path", conn_id)
        expires_at = _timestamp(raw)
        if expires_at is None:
            raise AuthenticationError(
                conn_id,
                f"extra 'token_expires_at_path' ({settings.expires_at_path!r}) is "
                f"{raw!r} in the token response, not Unix seconds or an ISO 8601 timestamp",
            )
        if expires_at > LATEST_PLAUSIBLE_EXPIRY:
            raise AuthenticationError(
                conn_id,
                f"extra 'token_expires_at_path' ({settings.expires_at_path!r}) is "
                f"{raw!r}, which is after the year 2500 read as Unix seconds; if the "
                "endpoint sends milliseconds, read the expiry with token_expires_in_path "
                "or set token_ttl_seconds instead",
            )
        seconds = expires_at - time.time()
    else:
        seconds = settings.ttl_seconds

    if seconds > settings.safety_margin_seconds:
        return seconds - settings.safety_margin_seconds
    return max(seconds / 2, 0.0)


# 2500-01-01T00:00:00Z in Unix seconds. A later expiry is almost surely a timestamp in
# milliseconds, which read as seconds would keep a token for thousands of years.
LATEST_PLAUSIBLE_EXPIRY = 16_725_225_600


def _expiry_value(document: Any, path: str, key: str, conn_id: str) -> Any:
    if document is None:
        raise AuthenticationError(
            conn_id, f"the token response is not JSON, so extra {key!r} ({path!r}) cannot be read"
        )
    value = response.FieldPath.parse(path).lookup(document)
    if value is response._MISSING:
        raise AuthenticationError(
            conn_id,
            f"the token response has no field at extra {key!r} ({path!r}); its top-level "
            f"fields are {_field_names(document)}",
        )
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> float | None:
    """Return Unix seconds from a number or an ISO 8601 text (UTC when it names no zone)."""
    number = _number(value)
    if number is not None:
        return number
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _field_names(document: Any) -> str:
    if isinstance(document, Mapping):
        return ", ".join(sorted(str(key) for key in document)) or "(none)"
    return f"(none: the response is a JSON {type(document).__name__})"


def _fill(document: Any, values: Mapping[str, str]) -> Any:
    """Replace $login, $password and $client_secret in every string of a JSON document."""
    if isinstance(document, str):
        return Template(document).substitute(values)
    if isinstance(document, Mapping):
        return {key: _fill(value, values) for key, value in document.items()}
    if isinstance(document, list):
        return [_fill(value, values) for value in document]
    return document


def _query_forms(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """Return each token as yarl writes it into a URL query, which a server may echo back."""
    forms = []
    for value in tokens:
        query = URL("http://localhost/").with_query([("t", value)]).raw_query_string
        forms.append(query.partition("=")[2])
    return tuple(forms)


def _where(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}{parsed.path}"
