"""The sending engine: one aiohttp session per endpoint, retries, capping and outcomes.

``Sender.send`` turns one prepared request into one outcome and never raises for a
problem of that request. ``Sender.send_all`` streams many requests through a fixed
pool of workers, so memory stays flat whatever the audience size.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine.attempt import (
    AttemptEnd,
    AttemptResult,
    run_attempt,
    run_http1_attempt,
)
from airflow_provider_journey.engine.auth import (
    AuthenticationError,
    Authenticator,
    make_authenticator,
    redact,
)
from airflow_provider_journey.engine.capping import Limiter, limiter_for
from airflow_provider_journey.engine.http1 import USER_AGENT, Http1Pool
from airflow_provider_journey.engine.outcome_builder import OutcomeBuilder
from airflow_provider_journey.engine.policy import CallPolicy, backoff_delay, parse_retry_after
from airflow_provider_journey.engine.tls import proxy_auth, ssl_context_for, warn_if_unverified
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest

log = logging.getLogger(__name__)

C = TypeVar("C")

# Parsed request URLs kept per path; most actions call one or a few paths.
_URL_CACHE_SIZE = 256


@dataclass(slots=True)
class SendCounters:
    """Live counts of one sender, for a caller to log at a steady interval.

    ``attempts`` counts HTTP attempts actually sent; ``retries`` counts retries by
    reason (``http_503``, ``timeout``, ``connection``, ``unauthorized``).
    """

    attempts: int = 0
    in_flight: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    capped: int = 0
    retries: Counter[str] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        """Number of requests that have an outcome."""
        return self.succeeded + self.failed + self.timed_out + self.capped

    def snapshot(self) -> dict[str, Any]:
        """Return a copy of the counts as a plain dict."""
        return {
            "attempts": self.attempts,
            "in_flight": self.in_flight,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "timed_out": self.timed_out,
            "capped": self.capped,
            "retries": dict(self.retries),
        }


class Sender:
    """Sends prepared requests of one action to one endpoint and returns their outcomes.

    Use it as an async context manager. Without a proxy, requests go through the lean
    HTTP/1.1 client of ``engine.http1``, which costs far less CPU per call than
    aiohttp. Requests through a proxy, and the hops after a redirect, go through one
    ``aiohttp.ClientSession``. Each of the two keeps at most ``settings.max_connections``
    connections. Each attempt takes a slot from ``limiter`` (by default the
    process-wide limiter of the endpoint connection).

    NOTE: the per-attempt timeout also counts the time a request waits for a free
    connection in the pool, so ``concurrency`` above ``max_connections`` makes slow
    endpoints time out sooner.
    """

    def __init__(
        self,
        settings: EndpointSettings,
        action_name: str,
        policy: CallPolicy,
        *,
        concurrency: int = 64,
        limiter: Limiter | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, got {concurrency!r}")

        self.settings = settings
        self.action_name = action_name
        self.policy = policy
        self.concurrency = concurrency
        self.counters = SendCounters()

        self._limiter = limiter if limiter is not None else limiter_for(settings)
        self._auth = authenticator if authenticator is not None else make_authenticator(settings)
        self._timeout = aiohttp.ClientTimeout(total=policy.timeout)
        self._rng = random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._pool: Http1Pool | None = None
        self._urls: dict[str, URL] = {}
        self._connection_error_logged = False
        self._unexpected_errors = 0

        base = URL(settings.base_url)
        self._base_url = settings.base_url.rstrip("/")
        self._where = f"{base.host}:{base.port}"
        self._outcomes = OutcomeBuilder(
            action_name, settings.conn_id, self._where, policy, self._auth
        )

    async def __aenter__(self) -> Sender:
        warn_if_unverified(self.settings)
        ssl_context = self._ssl_context()
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections,
            ssl=ssl_context if ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            proxy=self.settings.proxy_url,
            proxy_auth=proxy_auth(self.settings),
            headers={"User-Agent": USER_AGENT},
        )
        self._pool = self._http1_pool(ssl_context)
        return self

    def _ssl_context(self) -> ssl.SSLContext | None:
        """Build the connection's TLS context; None for plain HTTP with default TLS settings.

        Loading the system's CA certificates takes about 20 ms. A plain-HTTP endpoint needs
        a context only for a redirect to HTTPS, and aiohttp's own verified default context
        (``ssl=True``) then does the same as the default settings.
        """
        settings = self.settings
        default_tls = settings.verify_ssl and not (
            settings.ca_bundle or settings.client_cert or settings.client_key
        )
        if default_tls and URL(settings.base_url).scheme == "http":
            return None
        return ssl_context_for(settings)

    def _http1_pool(self, ssl_context: ssl.SSLContext | None) -> Http1Pool | None:
        """Return the lean client's pool for the endpoint, or None when aiohttp must send."""
        base = URL(self.settings.base_url)
        if self.settings.proxy_url or base.scheme not in ("http", "https") or base.user:
            return None
        if base.host is None or base.port is None:
            return None
        host_header = base.raw_host if base.is_default_port() else f"{base.raw_host}:{base.port}"
        if base.raw_host and ":" in base.raw_host:
            # An IPv6 address goes in brackets in the Host header.
            bracketed = f"[{base.raw_host}]"
            host_header = bracketed if base.is_default_port() else f"{bracketed}:{base.port}"
        return Http1Pool(
            base.host,
            base.port,
            ssl_context=ssl_context if base.scheme == "https" else None,
            limit=self.settings.max_connections,
            host_header=host_header or "",
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: PreparedRequest) -> Outcome:
        """Send one request with retries and return its outcome; never raise for its problems."""
        session = self._open_session()
        started = time.perf_counter()
        self.counters.in_flight += 1
        try:
            outcome = await self._send(request, session)
        except AuthenticationError as error:
            # No credential, so nothing was sent; the token cache logs the failure.
            outcome = self._outcomes.new(request, OutcomeStatus.FAILED, "internalError", 0)
            outcome.error = redact(f"{error}; the call was not sent", self._auth.secrets)
        except Exception as error:
            # One profile's surprise must not end the run for the whole audience.
            outcome = self._unexpected(request, error)
        finally:
            self.counters.in_flight -= 1

        outcome.latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        self._count(outcome.status)
        return outcome

    async def send_all(
        self,
        items: Iterable[tuple[PreparedRequest, C]],
        on_outcome: Callable[[Outcome, C], None],
    ) -> None:
        """Send every request of ``items`` and call ``on_outcome`` as each one finishes.

        ``concurrency`` workers pull from one iterator, so the iterable is consumed
        lazily and only ``concurrency`` requests are held at a time. An exception from
        the iterable or from ``on_outcome`` stops every worker and is raised here.
        """
        iterator = iter(items)

        async def work() -> None:
            for request, context in iterator:
                on_outcome(await self.send(request), context)

        workers = [asyncio.create_task(work()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(
                f"Sender for action {self.action_name!r} is not open; "
                "use it as 'async with Sender(...) as sender:'"
            )
        return self._session

    async def _send(self, request: PreparedRequest, session: aiohttp.ClientSession) -> Outcome:
        method = request.method.upper()
        url = self._url(request.path)
        headers, query = await self._prepare(request, method, url)
        allow_redirects = method == "GET" or self.settings.allow_redirects

        attempts = 0
        retries = 0
        refreshed = False
        result: AttemptResult | None = None
        while True:
            sent = await self._attempt(
                session, method, url, headers, query, request.body, allow_redirects
            )
            if sent is None:
                return self._outcomes.capped(request, attempts, result)
            result = sent
            attempts += 1

            if result.status == 401 and not refreshed and await self._auth.on_unauthorized():
                refreshed = True
                self.counters.retries["unauthorized"] += 1
                headers, query = await self._prepare(request, method, url)
                continue

            reason = self._retry_reason(result)
            if reason is None or retries >= self.policy.max_retries:
                return self._outcomes.final(request, result, attempts)

            retries += 1
            self.counters.retries[reason] += 1
            await asyncio.sleep(self._retry_wait(result, retries))

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        headers: CIMultiDict[str],
        query: list[tuple[str, str]],
        body: bytes | None,
        allow_redirects: bool,
    ) -> AttemptResult | None:
        """Take a capping slot and send one attempt; return None when capping rejects it."""
        if self._pool is None:
            if not await self._limiter.acquire():
                return None
            self.counters.attempts += 1
            return await run_attempt(
                session,
                method,
                url,
                headers=headers,
                query=query,
                body=body,
                allow_redirects=allow_redirects,
                timeout=self._timeout,
                max_response_bytes=self.policy.max_response_bytes,
                where=self._where,
            )

        try:
            parsed = self._parsed_url(url)
            if query:
                parsed = parsed.extend_query(query)
        except (ValueError, TypeError) as error:
            message = f"request could not be sent: {type(error).__name__}: {error}"
            return AttemptResult(AttemptEnd.CLIENT_ERROR, message=message)
        return await run_http1_attempt(
            self._pool,
            session,
            method,
            parsed,
            headers=headers,
            body=body,
            allow_redirects=allow_redirects,
            timeout=self.policy.timeout,
            max_response_bytes=self.policy.max_response_bytes,
            where=self._where,
            gate=self._take_slot,
        )

    async def _take_slot(self) -> bool:
        """Take a capping slot right before a request is written, and count the attempt."""
        if not await self._limiter.acquire():
            return False
        self.counters.attempts += 1
        return True

    def _parsed_url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = URL(url)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    def _url(self, path: str) -> str:
        if path.startswith("/"):
            return self._base_url + path
        return f"{self._base_url}/{path}"

    async def _prepare(
        self, request: PreparedRequest, method: str, url: str
    ) -> tuple[CIMultiDict[str], list[tuple[str, str]]]:
        """Merge the endpoint's default headers, the request's headers and the credential."""
        headers: CIMultiDict[str] = CIMultiDict(self.settings.headers)
        headers.update(request.headers)
        if request.body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"

        query = list(request.query)
        await self._auth.apply(method, url, headers, query)
        return headers, query

    def _retry_reason(self, result: AttemptResult) -> str | None:
        """Return why the attempt is worth retrying (for the counters), or None if it is final."""
        if result.end is AttemptEnd.RESPONSE:
            if result.status in self.policy.retry_statuses:
                return f"http_{result.status}"
            return None
        if result.end is AttemptEnd.TIMEOUT:
            return "timeout"
        if result.end is AttemptEnd.CONNECTION and result.retryable:
            self._log_first_connection_error(result)
            return "connection"
        return None

    def _retry_wait(self, result: AttemptResult, retry: int) -> float:
        """Return the seconds to wait before a retry: Retry-After if valid, else backoff."""
        if result.retry_after is not None:
            requested = parse_retry_after(result.retry_after)
            if requested is not None:
                return min(requested, self.policy.max_retry_wait)
        return backoff_delay(retry, self.policy, self._rng)

    def _log_first_connection_error(self, result: AttemptResult) -> None:
        if not self._connection_error_logged:
            self._connection_error_logged = True
            log.debug(
                "Action %r: first connection error to endpoint connection %r: %s (retrying)",
                self.action_name,
                self.settings.conn_id,
                redact(result.message, self._auth.secrets),
            )

    def _unexpected(self, request: PreparedRequest, error: Exception) -> Outcome:
        """Turn an error that no branch expects into a failed outcome, logging the first one."""
        self._unexpected_errors += 1
        # The traceback repeats the error text, which may contain a secret, so it is
        # logged only at DEBUG; the outcome gets the redacted text.
        if self._unexpected_errors == 1:
            log.warning(
                "Action %r: unexpected %s while sending profile %r; later ones are counted only",
                self.action_name,
                type(error).__name__,
                request.profile_id,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
        return self._outcomes.unexpected(request, error)

    def _count(self, status: OutcomeStatus) -> None:
        counters = self.counters
        if status is OutcomeStatus.SUCCEEDED:
            counters.succeeded += 1
        elif status is OutcomeStatus.TIMED_OUT:
            counters.timed_out += 1
        elif status is OutcomeStatus.CAPPED:
            counters.capped += 1
        else:
            counters.failed += 1
