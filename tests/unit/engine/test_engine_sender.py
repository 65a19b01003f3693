from __future__ import annotations

import asyncio
import base64
import itertools
import time
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web
from engine_test_server import Recorder, prepared, serve, settings_for, unused_port

from airflow_provider_journey.engine import CallPolicy, InMemorySlidingWindowLimiter, Sender
from airflow_provider_journey.engine.sender import SendCounters
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest

FAST = CallPolicy(backoff_base=0.01, backoff_max=0.05)


def json_handler(document: Any, status: int = 200) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(document, status=status)

    return handler


def scripted(*responses: web.Response) -> Any:
    """Return each response in turn, then repeat the last one."""
    answers = list(responses)

    async def handler(request: web.Request) -> web.Response:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return handler


def exchange(
    handler: Any,
    request: PreparedRequest | None = None,
    policy: CallPolicy = FAST,
    **settings: Any,
) -> tuple[Outcome, Recorder, SendCounters]:
    async def run() -> tuple[Outcome, Recorder, SendCounters]:
        async with (
            serve(handler) as (url, recorder),
            Sender(settings_for(url, **settings), "notify", policy) as sender,
        ):
            outcome = await sender.send(request or prepared())
            return outcome, recorder, sender.counters

    return asyncio.run(run())


def gaps(recorder: Recorder) -> list[float]:
    times = [seen.at for seen in recorder.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# Success and kept fields


def test_send_success_keeps_nested_and_array_fields() -> None:
    document = {"data": {"id": 7, "items": [{"sku": "a"}, {"sku": "b"}]}, "other": 1}
    policy = CallPolicy(keep_response_fields=("data.id", "data.items.1.sku", "missing.field"))

    outcome, _, _ = exchange(json_handler(document), policy=policy)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.status_code == "http_200"
    assert outcome.http_status == 200
    assert outcome.response == {"data.id": 7, "data.items.1.sku": "b"}
    assert outcome.error is None
    assert outcome.attempts == 1


def test_send_success_sets_ids_and_latency() -> None:
    outcome, _, _ = exchange(json_handler({}), request=prepared("profile-9"))

    assert outcome.profile_id == "profile-9"
    assert outcome.action == "notify"
    assert outcome.idempotency_key == "key-profile-9"
    assert outcome.latency_ms is not None
    assert outcome.latency_ms > 0


def test_send_top_level_array_indexed() -> None:
    policy = CallPolicy(keep_response_fields=("1.id", "0.tags.0"))

    outcome, _, _ = exchange(json_handler([{"id": 1, "tags": ["x"]}, {"id": 2}]), policy=policy)

    assert outcome.response == {"1.id": 2, "0.tags.0": "x"}


def test_send_kept_null_field_differs_from_missing() -> None:
    policy = CallPolicy(keep_response_fields=("a", "b"))

    outcome, _, _ = exchange(json_handler({"a": None}), policy=policy)

    assert outcome.response == {"a": None}


def test_send_success_without_declared_fields_keeps_nothing() -> None:
    outcome, _, _ = exchange(json_handler({"id": 1}))

    assert outcome.response is None


def test_send_non_json_success_with_fields_notes_it() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="accepted")

    outcome, _, _ = exchange(handler, policy=CallPolicy(keep_response_fields=("id", "state")))

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.response is None
    assert outcome.error == "response is not JSON; fields not kept: id, state"


def test_send_non_json_success_without_fields_is_clean() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="accepted")

    outcome, _, _ = exchange(handler)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.error is None


# Oversized bodies


@pytest.mark.parametrize("chunked", [False, True])
def test_send_oversized_body_not_kept(chunked: bool) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=b'{"id": "' + b"x" * 5000 + b'"}')
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"y" * 600)
        await response.write_eof()
        return response

    policy = CallPolicy(max_response_bytes=1000, keep_response_fields=("id",))
    outcome, _, _ = exchange(handler, policy=policy)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.response is None
    assert outcome.error is not None
    assert "over 1000 bytes" in outcome.error


def test_send_body_at_limit_is_kept() -> None:
    body = b'{"id": "' + b"x" * 90 + b'"}'
    policy = CallPolicy(max_response_bytes=len(body), keep_response_fields=("id",))

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    outcome, _, _ = exchange(handler, policy=policy)

    assert outcome.response == {"id": "x" * 90}


def test_send_oversized_error_body_reported() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=400, body=b"e" * 3000)

    outcome, _, _ = exchange(handler, policy=CallPolicy(max_response_bytes=100))

    assert outcome.status is OutcomeStatus.FAILED
    assert (
        outcome.error
        == "HTTP 400 after 1 attempt; response body is over 100 bytes; nothing was kept"
    )


# Retries


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_send_retry_status_is_retried(status: int) -> None:
    policy = CallPolicy(max_retries=2, backoff_base=0.01)

    outcome, recorder, _ = exchange(json_handler({"error": "busy"}, status=status), policy=policy)

    assert recorder.count == 3
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.status_code == f"http_{status}"
    assert outcome.attempts == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_send_client_error_not_retried(status: int) -> None:
    outcome, recorder, _ = exchange(json_handler({"error": "no"}, status=status))

    assert recorder.count == 1
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.status_code == f"http_{status}"
    assert outcome.attempts == 1


def test_send_retries_until_success() -> None:
    handler = scripted(
        web.Response(status=503), web.Response(status=503), web.json_response({"id": 3})
    )

    outcome, recorder, counters = exchange(handler)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.attempts == 3
    assert recorder.count == 3
    assert counters.retries["http_503"] == 2
    assert counters.attempts == 3


def test_send_retries_keep_body_and_idempotency_key() -> None:
    handler = scripted(web.Response(status=500), web.Response(status=502), web.Response(status=200))

    _, recorder, _ = exchange(handler)

    keys = {seen.headers["Idempotency-Key"] for seen in recorder.requests}
    content_types = {seen.headers["Content-Type"] for seen in recorder.requests}
    bodies = {seen.body for seen in recorder.requests}
    assert recorder.count == 3
    assert keys == {"key-p1"}
    assert content_types == {"application/json"}
    assert bodies == {b'{"hello": "world"}'}


def test_send_retries_wait_with_backoff() -> None:
    policy = CallPolicy(max_retries=2, backoff_base=0.2, jitter="equal")

    _, recorder, _ = exchange(json_handler({}, status=503), policy=policy)

    first, second = gaps(recorder)
    # Equal jitter waits at least half the ceiling: 0.2 s, then 0.4 s.
    assert first >= 0.1
    assert second >= 0.2


def test_send_retry_after_seconds_is_honoured() -> None:
    handler = scripted(
        web.Response(status=429, headers={"Retry-After": "1"}), web.Response(status=200)
    )

    outcome, recorder, _ = exchange(handler)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert gaps(recorder)[0] >= 1.0


def test_send_retry_after_http_date_is_honoured() -> None:
    async def handler(request: web.Request) -> web.Response:
        if len(answered) == 0:
            answered.append(time.time())
            # An HTTP date has whole seconds, so this requests a wait of 2 to 3 seconds.
            retry_at = formatdate(int(time.time()) + 3, usegmt=True)
            return web.Response(status=503, headers={"Retry-After": retry_at})
        return web.Response(status=200)

    answered: list[float] = []
    outcome, recorder, _ = exchange(handler)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert gaps(recorder)[0] >= 1.9


@pytest.mark.timeout(60)
def test_send_retry_after_capped_by_max_retry_wait() -> None:
    handler = scripted(
        web.Response(status=503, headers={"Retry-After": "3600"}), web.Response(status=200)
    )
    policy = CallPolicy(max_retry_wait=0.3)

    outcome, recorder, _ = exchange(handler, policy=policy)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert gaps(recorder)[0] >= 0.3


def test_send_zero_retries_sends_once() -> None:
    outcome, recorder, _ = exchange(json_handler({}, status=503), policy=CallPolicy(max_retries=0))

    assert recorder.count == 1
    assert outcome.attempts == 1


# Error responses


def test_send_error_keeps_error_fields() -> None:
    document = {"error": {"code": "E42", "detail": "bad email"}}
    policy = CallPolicy(keep_error_fields=("error.code",), keep_response_fields=("id",))

    outcome, _, _ = exchange(json_handler(document, status=422), policy=policy)

    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.http_status == 422
    assert outcome.response == {"error.code": "E42"}


def test_send_error_message_has_status_and_body_start() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=400, text="A" * 500 + "B" * 500)

    outcome, _, _ = exchange(handler)

    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 400 after 1 attempt: ")
    assert "A" * 500 in outcome.error
    assert "B" not in outcome.error


# Timeouts and connection errors


def test_send_slow_endpoint_times_out() -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(status=200)

    policy = CallPolicy(timeout=0.2, max_retries=1, backoff_base=0.01)
    outcome, recorder, counters = exchange(handler, policy=policy)

    assert outcome.status is OutcomeStatus.TIMED_OUT
    assert outcome.status_code == "timedout"
    assert outcome.attempts == 2
    assert recorder.count == 2
    assert counters.retries["timeout"] == 1
    assert counters.timed_out == 1


def test_send_connection_refused_fails_as_internal_error() -> None:
    port = unused_port()

    async def run() -> Outcome:
        settings = settings_for(f"http://127.0.0.1:{port}")
        async with Sender(settings, "notify", FAST) as sender:
            return await sender.send(prepared())

    outcome = asyncio.run(run())

    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.status_code == "internalError"
    assert outcome.attempts == 4
    assert outcome.error is not None
    assert f"connection refused by 127.0.0.1:{port} after 4 attempts" in outcome.error


def test_send_server_disconnect_is_retried() -> None:
    async def handler(request: web.Request) -> web.Response:
        if recorder_holder[0].count <= 2:
            assert request.transport is not None
            request.transport.close()
        return web.Response(status=200)

    recorder_holder: list[Recorder] = []

    async def run() -> Outcome:
        async with serve(handler) as (url, recorder):
            recorder_holder.append(recorder)
            async with Sender(settings_for(url), "notify", FAST) as sender:
                return await sender.send(prepared())

    outcome = asyncio.run(run())

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.attempts == 3


# Secrets and authentication


async def echo_request(request: web.Request) -> web.Response:
    text = f"denied: auth={request.headers.get('Authorization')} query={request.query_string}"
    return web.Response(status=401, text=text)


@pytest.mark.parametrize(
    "settings, secret_forms",
    [
        ({"auth_type": "bearer", "secret": "tok-SECRET-123"}, ["tok-SECRET-123"]),
        (
            {"auth_type": "basic", "login": "bot", "secret": "pw-SECRET-456"},
            ["pw-SECRET-456", base64.b64encode(b"bot:pw-SECRET-456").decode()],
        ),
        (
            {
                "auth_type": "api_key",
                "secret": "key/SECRET+789",
                "api_key_name": "key",
                "api_key_in": "query",
            },
            ["key/SECRET+789", "key%2FSECRET%2B789"],
        ),
    ],
)
def test_send_unauthorized_echo_hides_secret(
    settings: dict[str, Any], secret_forms: list[str]
) -> None:
    outcome, recorder, _ = exchange(echo_request, **settings)

    assert recorder.count == 1
    assert outcome.status_code == "http_401"
    assert outcome.error is not None
    assert "***" in outcome.error
    for form in secret_forms:
        assert form not in outcome.error


def test_send_basic_auth_header() -> None:
    _, recorder, _ = exchange(json_handler({}), auth_type="basic", login="bot", secret="pw")

    expected = "Basic " + base64.b64encode(b"bot:pw").decode()
    assert recorder.requests[0].headers["Authorization"] == expected


def test_send_bearer_auth_header() -> None:
    _, recorder, _ = exchange(json_handler({}), auth_type="bearer", secret="tok123")

    assert recorder.requests[0].headers["Authorization"] == "Bearer tok123"


def test_send_api_key_in_header() -> None:
    _, recorder, _ = exchange(
        json_handler({}), auth_type="api_key", secret="k-1", api_key_name="X-Api-Key"
    )

    assert recorder.requests[0].headers["X-Api-Key"] == "k-1"
    assert ("X-Api-Key", "k-1") not in recorder.requests[0].query


def test_send_api_key_in_query() -> None:
    request = prepared(query=(("lang", "en"),))

    _, recorder, _ = exchange(
        json_handler({}),
        request=request,
        auth_type="api_key",
        secret="k-2",
        api_key_name="apikey",
        api_key_in="query",
    )

    assert recorder.requests[0].query == [("lang", "en"), ("apikey", "k-2")]
    assert "apikey" not in recorder.requests[0].headers


def test_send_no_auth_sends_no_authorization() -> None:
    _, recorder, _ = exchange(json_handler({}))

    assert "Authorization" not in recorder.requests[0].headers


# Headers, methods and redirects


def test_send_merges_endpoint_and_request_headers() -> None:
    request = prepared(headers={"X-Trace": "t-1", "X-Team": "growth"})

    _, recorder, _ = exchange(
        json_handler({}), request=request, headers={"X-Team": "default", "X-Source": "airflow"}
    )

    seen = recorder.requests[0].headers
    assert seen["X-Trace"] == "t-1"
    assert seen["X-Team"] == "growth"
    assert seen["X-Source"] == "airflow"


def test_send_keeps_explicit_content_type() -> None:
    request = prepared(headers={"content-type": "application/vnd.api+json"})

    _, recorder, _ = exchange(json_handler({}), request=request)

    assert recorder.requests[0].headers["Content-Type"] == "application/vnd.api+json"


def test_send_get_without_body_has_no_content_type() -> None:
    request = prepared(method="GET", body=None, path="users/5")

    _, recorder, _ = exchange(json_handler({}), request=request)

    assert recorder.requests[0].method == "GET"
    assert recorder.requests[0].path == "/users/5"
    assert "Content-Type" not in recorder.requests[0].headers


async def redirect_once(request: web.Request) -> web.Response:
    if request.path == "/final":
        return web.json_response({"where": "final"})
    raise web.HTTPFound("/final")


def test_send_get_follows_redirect() -> None:
    policy = CallPolicy(keep_response_fields=("where",))

    outcome, _, _ = exchange(
        redirect_once, request=prepared(method="GET", body=None), policy=policy
    )

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.response == {"where": "final"}


def test_send_post_redirect_not_followed_by_default() -> None:
    outcome, recorder, _ = exchange(redirect_once)

    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.status_code == "http_302"
    assert recorder.count == 1


def test_send_post_redirect_followed_when_allowed() -> None:
    outcome, recorder, _ = exchange(redirect_once, allow_redirects=True)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert recorder.count == 2


# Capping


def test_send_reject_mode_caps_without_sending() -> None:
    async def run() -> tuple[list[Outcome], Recorder]:
        limiter = InMemorySlidingWindowLimiter(2, 60.0, "reject")
        async with (
            serve(json_handler({})) as (url, recorder),
            Sender(settings_for(url), "notify", FAST, limiter=limiter) as sender,
        ):
            outcomes = [await sender.send(prepared(str(i))) for i in range(5)]
        return outcomes, recorder

    outcomes, recorder = asyncio.run(run())

    statuses = [outcome.status for outcome in outcomes]
    assert statuses == [OutcomeStatus.SUCCEEDED] * 2 + [OutcomeStatus.CAPPED] * 3
    assert {outcome.status_code for outcome in outcomes[2:]} == {"capped"}
    assert {outcome.attempts for outcome in outcomes[2:]} == {0}
    assert recorder.count == 2


def test_send_reject_mode_caps_retry() -> None:
    async def run() -> tuple[Outcome, Recorder]:
        limiter = InMemorySlidingWindowLimiter(1, 60.0, "reject")
        async with (
            serve(json_handler({}, status=503)) as (url, recorder),
            Sender(settings_for(url), "notify", FAST, limiter=limiter) as sender,
        ):
            outcome = await sender.send(prepared())
        return outcome, recorder

    outcome, recorder = asyncio.run(run())

    assert outcome.status is OutcomeStatus.CAPPED
    assert outcome.attempts == 1
    assert outcome.http_status == 503
    assert recorder.count == 1


def test_send_throttle_cap_holds_at_server() -> None:
    calls, period = 5, 0.5

    async def run() -> Recorder:
        limiter = InMemorySlidingWindowLimiter(calls, period, "throttle")
        async with (
            serve(json_handler({})) as (url, recorder),
            Sender(settings_for(url), "notify", FAST, concurrency=20, limiter=limiter) as sender,
        ):
            items = ((prepared(str(i)), i) for i in range(20))
            await sender.send_all(items, lambda outcome, context: None)
        return recorder

    recorder = asyncio.run(run())

    times = sorted(seen.at for seen in recorder.requests)
    # The server stamps a request when it arrives, a few milliseconds after the limiter
    # granted it. The window is narrowed by that delay, so the check measures the limiter.
    window = period - 0.05
    busiest = max(sum(1 for t in times if start <= t < start + window) for start in times)
    assert recorder.count == 20
    assert busiest <= calls


def test_send_unopened_sender_raises() -> None:
    sender = Sender(settings_for("http://127.0.0.1:1"), "notify", FAST)

    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(sender.send(prepared()))


class BrokenAuthenticator:
    secrets = ("tok-BROKEN",)

    async def apply(self, method: str, url: str, headers: Any, query: Any) -> None:
        raise TypeError("cannot use tok-BROKEN here")

    async def on_unauthorized(self) -> bool:
        return False


def test_send_unexpected_error_becomes_failed_outcome() -> None:
    async def run() -> Outcome:
        sender = Sender(
            settings_for("http://127.0.0.1:1"), "notify", FAST, authenticator=BrokenAuthenticator()
        )
        async with sender:
            return await sender.send(prepared())

    outcome = asyncio.run(run())

    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.status_code == "internalError"
    assert outcome.error is not None
    assert "unexpected TypeError" in outcome.error
    assert "tok-BROKEN" not in outcome.error


class RefreshingAuthenticator:
    """Sends a stale token first and a fresh one after the first 401."""

    secrets: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.token = "stale"
        self.refreshes = 0

    async def apply(self, method: str, url: str, headers: Any, query: Any) -> None:
        headers["Authorization"] = f"Bearer {self.token}"

    async def on_unauthorized(self) -> bool:
        self.refreshes += 1
        self.token = "fresh"
        return True


def test_send_unauthorized_refresh_repeats_once() -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.headers["Authorization"] == "Bearer fresh":
            return web.Response(status=200)
        return web.Response(status=401)

    authenticator = RefreshingAuthenticator()

    async def run() -> tuple[Outcome, Recorder]:
        async with serve(handler) as (url, recorder):
            sender = Sender(settings_for(url), "notify", FAST, authenticator=authenticator)
            async with sender:
                return await sender.send(prepared()), recorder

    outcome, recorder = asyncio.run(run())

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.attempts == 2
    assert recorder.count == 2
    assert authenticator.refreshes == 1


def test_send_unauthorized_after_refresh_is_final() -> None:
    authenticator = RefreshingAuthenticator()

    async def run() -> tuple[Outcome, Recorder]:
        async with serve(json_handler({}, status=401)) as (url, recorder):
            sender = Sender(settings_for(url), "notify", FAST, authenticator=authenticator)
            async with sender:
                return await sender.send(prepared()), recorder

    outcome, recorder = asyncio.run(run())

    assert outcome.status_code == "http_401"
    assert recorder.count == 2
    assert authenticator.refreshes == 1
