"""The sending engine: one aiohttp session per endpoint, retries, capping and outcomes.

``Sender.send`` turns one prepared request into one outcome and never raises for a
problem of that request. ``Sender.send_all`` streams many requests through a fixed
pool of workers, so memory stays flat whatever the audience size.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
from airflow_provider_journey.engine.attempt import AttemptEnd, AttemptResult, run_attempt
from airflow_provider_journey.engine.auth import Authenticator, make_authenticator, redact
from airflow_provider_journey.engine.capping import Limiter, limiter_for
from airflow_provider_journey.engine.policy import CallPolicy, backoff_delay, parse_retry_after
from airflow_provider_journey.engine.response import (
    FieldPath,
    compile_paths,
    error_body_excerpt,
    keep_fields,
    parse_json,
)
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest

log = logging.getLogger(__name__)

C = TypeVar("C")


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

    Use it as an async context manager: it owns one ``aiohttp.ClientSession`` whose
    connection pool keeps at most ``settings.max_connections`` connections. Each
    attempt takes a slot from ``limiter`` (by default the process-wide limiter of the
    endpoint connection).

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
        self._response_fields = compile_paths(policy.keep_response_fields)
        self._error_fields = compile_paths(policy.keep_error_fields)
        self._rng = random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._connection_error_logged = False
        self._unexpected_errors = 0

        base = URL(settings.base_url)
        self._base_url = settings.base_url.rstrip("/")
        self._where = f"{base.host}:{base.port}"

    async def __aenter__(self) -> Sender:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections,
            ssl=self.settings.verify_ssl,
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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
            if not await self._limiter.acquire():
                return self._capped(request, attempts, result)

            attempts += 1
            self.counters.attempts += 1
            result = await run_attempt(
                session,
                method,
                url,
                headers=headers,
                query=query,
                body=request.body,
                allow_redirects=allow_redirects,
                timeout=self._timeout,
                max_response_bytes=self.policy.max_response_bytes,
                where=self._where,
            )

            if result.status == 401 and not refreshed and await self._auth.on_unauthorized():
                refreshed = True
                self.counters.retries["unauthorized"] += 1
                headers, query = await self._prepare(request, method, url)
                continue

            reason = self._retry_reason(result)
            if reason is None or retries >= self.policy.max_retries:
                return self._final(request, result, attempts)

            retries += 1
            self.counters.retries[reason] += 1
            await asyncio.sleep(self._retry_wait(result, retries))

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

    def _final(self, request: PreparedRequest, result: AttemptResult, attempts: int) -> Outcome:
        """Build the outcome of the last attempt of a request."""
        if result.end is AttemptEnd.RESPONSE:
            return self._response_outcome(request, result, attempts)

        outcome = self._outcome(request, OutcomeStatus.FAILED, "internalError", attempts)
        if result.end is AttemptEnd.TIMEOUT:
            outcome.status = OutcomeStatus.TIMED_OUT
            outcome.status_code = "timedout"
            outcome.error = (
                f"no complete response from {self._where} within the timeout of "
                f"{self.policy.timeout:g} s, after {_attempts(attempts)}; check that the endpoint "
                "is healthy, or raise the endpoint connection's timeout"
            )
        elif result.end is AttemptEnd.CONNECTION:
            outcome.error = redact(
                f"{result.message} after {_attempts(attempts)}; check that the endpoint is up "
                "and reachable from this worker",
                self._auth.secrets,
            )
        else:
            outcome.error = redact(result.message, self._auth.secrets)
        return outcome

    def _response_outcome(
        self, request: PreparedRequest, result: AttemptResult, attempts: int
    ) -> Outcome:
        status = result.status
        code = f"http_{status}"
        if 200 <= status < 300:
            outcome = self._outcome(request, OutcomeStatus.SUCCEEDED, code, attempts)
            outcome.response, outcome.error = self._kept_fields(result.body, self._response_fields)
        else:
            outcome = self._outcome(request, OutcomeStatus.FAILED, code, attempts)
            outcome.response, note = self._kept_fields(result.body, self._error_fields)
            outcome.error = self._http_error(status, result.body, attempts, note)
        outcome.http_status = status
        return outcome

    def _kept_fields(
        self, body: bytes | None, paths: tuple[FieldPath, ...]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Return the kept fields of a body and a note when they could not be kept."""
        if body is None:
            limit = self.policy.max_response_bytes
            return None, f"response body is over {limit} bytes; nothing was kept"
        if not paths:
            return None, None

        is_json, document = parse_json(body)
        if not is_json:
            names = ", ".join(path.text for path in paths)
            return None, f"response is not JSON; fields not kept: {names}"
        return keep_fields(document, paths), None

    def _http_error(self, status: int, body: bytes | None, attempts: int, note: str | None) -> str:
        message = f"HTTP {status} after {_attempts(attempts)}"
        if body is None:
            return f"{message}; {note}"
        excerpt = error_body_excerpt(body, self._auth.secrets)
        if note is not None and "not JSON" in note:
            return f"{message}: {excerpt} ({note})"
        return f"{message}: {excerpt}"

    def _capped(
        self, request: PreparedRequest, attempts: int, last: AttemptResult | None
    ) -> Outcome:
        outcome = self._outcome(request, OutcomeStatus.CAPPED, "capped", attempts)
        conn_id = self.settings.conn_id
        if last is None:
            outcome.error = (
                f"endpoint connection {conn_id!r} is at its capping limit (capping mode "
                "'reject'); the call was not sent. Lower the audience rate or raise the limit"
            )
            return outcome

        if last.end is AttemptEnd.RESPONSE:
            outcome.http_status = last.status
            ending = f"HTTP {last.status}"
        elif last.end is AttemptEnd.TIMEOUT:
            ending = "a timeout"
        else:
            ending = "a connection error"
        outcome.error = (
            f"endpoint connection {conn_id!r} is at its capping limit (capping mode 'reject'), "
            f"so no retry was sent after {_attempts(attempts)}; the last attempt ended with "
            f"{ending}"
        )
        return outcome

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
        detail = redact(str(error), self._auth.secrets)[:500]
        outcome = self._outcome(request, OutcomeStatus.FAILED, "internalError", 0)
        outcome.error = (
            f"unexpected {type(error).__name__} while sending: {detail}; "
            "this is a bug in the provider, please report it with the task log"
        )
        return outcome

    def _outcome(
        self, request: PreparedRequest, status: OutcomeStatus, code: str, attempts: int
    ) -> Outcome:
        return Outcome(
            profile_id=request.profile_id,
            action=self.action_name,
            status=status,
            status_code=code,
            attempts=attempts,
            idempotency_key=request.idempotency_key,
        )

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


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"
