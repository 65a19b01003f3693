"""Token endpoint authentication against a token server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
from auth_test_servers import FAST, TokenServer, api_request, serve_token_server, token_settings

from airflow_provider_journey.engine import Sender
from airflow_provider_journey.engine.auth import (
    AuthenticationError,
    TokenEndpointAuth,
    make_authenticator,
)
from airflow_provider_journey.types import Outcome, OutcomeStatus


def conn_id() -> str:
    return f"tokens_{uuid.uuid4().hex[:8]}"


def send_many(
    server: TokenServer, count: int, concurrency: int = 64, **extra: Any
) -> list[Outcome]:
    async def run() -> list[Outcome]:
        async with serve_token_server(server):
            settings = token_settings(server.url, conn_id(), **extra)
            outcomes: list[Outcome] = []
            async with Sender(settings, "notify", FAST, concurrency=concurrency) as sender:
                items = ((api_request(f"p{i}"), None) for i in range(count))
                await sender.send_all(items, lambda outcome, _: outcomes.append(outcome))
            return outcomes

    return asyncio.run(run())


def send_one(server: TokenServer, **extra: Any) -> Outcome:
    return send_many(server, 1, **extra)[0]


def test_burst_of_1000_calls_fetches_one_token() -> None:
    server = TokenServer()

    outcomes = send_many(server, 1000, concurrency=200)

    assert server.fetches == 1
    assert all(outcome.status is OutcomeStatus.SUCCEEDED for outcome in outcomes)


def test_token_reused_until_expiry_minus_margin() -> None:
    server = TokenServer(lifetime=3.0)

    async def run() -> list[int]:
        async with serve_token_server(server):
            settings = token_settings(
                server.url,
                conn_id(),
                token_expires_in_path="expires_in",
                token_safety_margin_seconds=2,
            )
            fetches = []
            async with Sender(settings, "notify", FAST) as sender:
                await sender.send(api_request())
                await sender.send(api_request())
                fetches.append(server.fetches)
                # The token lives 3 s; with a 2 s margin it is renewed after 1 s.
                await asyncio.sleep(1.3)
                outcome = await sender.send(api_request())
                fetches.append(server.fetches)
                assert outcome.status is OutcomeStatus.SUCCEEDED
            return fetches

    assert asyncio.run(run()) == [1, 2]


def test_token_kept_within_lifetime_without_margin() -> None:
    server = TokenServer(lifetime=30.0)

    async def run() -> int:
        async with serve_token_server(server):
            settings = token_settings(
                server.url,
                conn_id(),
                token_expires_in_path="expires_in",
                token_safety_margin_seconds=0,
            )
            async with Sender(settings, "notify", FAST) as sender:
                await sender.send(api_request())
                await asyncio.sleep(1.3)
                await sender.send(api_request())
            return server.fetches

    assert asyncio.run(run()) == 1


def test_expired_token_renewed_from_fixed_ttl() -> None:
    server = TokenServer(lifetime=60.0)

    async def run() -> int:
        async with serve_token_server(server):
            settings = token_settings(
                server.url, conn_id(), token_ttl_seconds=1.5, token_safety_margin_seconds=0.5
            )
            async with Sender(settings, "notify", FAST) as sender:
                await sender.send(api_request())
                await asyncio.sleep(1.2)
                await sender.send(api_request())
            return server.fetches

    assert asyncio.run(run()) == 2


def test_revoked_token_refreshed_once_for_concurrent_401s() -> None:
    server = TokenServer()

    async def run() -> list[Outcome]:
        async with serve_token_server(server):
            settings = token_settings(server.url, conn_id())
            async with Sender(settings, "notify", FAST, concurrency=50) as sender:
                await sender.send(api_request("warm-up"))
                server.revoked.update(server.issued)
                return list(
                    await asyncio.gather(*(sender.send(api_request(f"p{i}")) for i in range(50)))
                )

    outcomes = asyncio.run(run())

    assert server.fetches == 2
    assert {outcome.status for outcome in outcomes} == {OutcomeStatus.SUCCEEDED}
    assert max(outcome.attempts for outcome in outcomes) == 2


def test_persistent_401_repeats_call_once() -> None:
    server = TokenServer()
    server.revoked = _AlwaysRevoked()

    outcome = send_one(server)

    assert outcome.status_code == "http_401"
    assert outcome.attempts == 2
    assert server.fetches == 2


class _AlwaysRevoked(set[str]):
    def __contains__(self, item: object) -> bool:
        return True


def test_failed_token_request_fails_call_unsent() -> None:
    server = TokenServer(token_status=500)

    outcome = send_one(server)

    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.attempts == 0
    assert "token endpoint" in (outcome.error or "")
    assert server.api_tokens == []


def test_failed_token_request_not_repeated_per_call() -> None:
    server = TokenServer(token_status=503)

    outcomes = send_many(server, 200, concurrency=20)

    assert server.fetches == 1
    assert {outcome.status for outcome in outcomes} == {OutcomeStatus.FAILED}


@pytest.mark.parametrize(
    "extra, check",
    [
        (
            {"token_method": "GET", "token_body": {"user": "$login", "secret": "$password"}},
            lambda seen: (
                seen["method"] == "GET"
                and seen["query"] == {"user": "svc", "secret": "pw-0123456789"}
            ),
        ),
        (
            {
                "token_body": {
                    "grant_type": "client_credentials",
                    "client_secret": "$client_secret",
                },
                "token_client_secret": "cs-0123456789",
            },
            lambda seen: (
                seen["body"] == b"grant_type=client_credentials&client_secret=cs-0123456789"
            ),
        ),
        (
            {
                "token_body_format": "json",
                "token_body": {"auth": {"user": "$login"}, "scope": ["a"]},
            },
            lambda seen: json.loads(seen["body"]) == {"auth": {"user": "svc"}, "scope": ["a"]},
        ),
        (
            {"token_headers": {"X-Api-Key": "$password"}},
            lambda seen: seen["headers"]["X-Api-Key"] == "pw-0123456789",
        ),
    ],
    ids=["get-query", "form-body", "nested-json-body", "headers"],
)
def test_token_request_shape(extra: dict[str, Any], check: Any) -> None:
    server = TokenServer()

    outcome = send_one(server, **extra)

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert check(server.token_requests[0])


@pytest.mark.parametrize(
    "extra",
    [
        {"token_placement": "header", "token_name": "X-Token"},
        {"token_placement": "query", "token_name": "token"},
        {"token_placement": "bearer"},
    ],
    ids=["header", "query", "bearer"],
)
def test_token_placement(extra: dict[str, Any]) -> None:
    server = TokenServer()

    outcome = send_one(server, **extra)

    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_token_read_from_nested_path() -> None:
    server = TokenServer(token_response=lambda value: {"data": {"id_token": value}})

    outcome = send_one(server, token_path="data.id_token")

    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_token_read_from_whole_body() -> None:
    server = TokenServer(token_response=lambda value: value.encode())

    outcome = send_one(server, token_path=None)

    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_expiry_read_from_iso_timestamp() -> None:
    def response(value: str) -> dict[str, Any]:
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=100)
        return {"access_token": value, "expires_at": expires.isoformat()}

    server = TokenServer(token_response=response)

    async def run() -> float:
        async with serve_token_server(server):
            settings = token_settings(server.url, conn_id(), token_expires_at_path="expires_at")
            auth = make_authenticator(settings)
            assert isinstance(auth, TokenEndpointAuth)
            token = await auth.cache.get(auth._fetch, settings.conn_id)
            return token.renew_at - time.monotonic()

    remaining = asyncio.run(run())

    assert 35 < remaining <= 40


@pytest.mark.parametrize(
    "response, extra, expected",
    [
        (lambda value: b"<html>login</html>", {}, "not JSON"),
        (lambda value: {"token": value}, {}, "has no string at extra 'token_path'"),
        (
            lambda value: {"access_token": value, "expires_in": "soon"},
            {"token_expires_in_path": "expires_in"},
            "not a number of seconds",
        ),
        (
            lambda value: {"access_token": value, "expires_at": "next tuesday"},
            {"token_expires_at_path": "expires_at"},
            "not Unix seconds or an ISO 8601 timestamp",
        ),
        (
            lambda value: {"access_token": value},
            {"token_expires_in_path": "expires_in"},
            "no field at extra 'token_expires_in_path'",
        ),
    ],
    ids=["non-json", "missing-path", "expiry-text", "expiry-not-timestamp", "expiry-missing"],
)
def test_bad_token_response_names_connection_and_field(
    response: Any, extra: dict[str, Any], expected: str
) -> None:
    server = TokenServer(token_response=response)
    name = conn_id()

    async def run() -> None:
        async with serve_token_server(server):
            settings = token_settings(server.url, name, **extra)
            auth = make_authenticator(settings)
            await auth.apply("GET", server.url, {}, [])

    with pytest.raises(AuthenticationError) as caught:
        asyncio.run(run())

    assert expected in str(caught.value)
    assert name in str(caught.value)


def test_token_error_body_hides_password() -> None:
    server = TokenServer(
        token_status=401, token_response=lambda value: {"denied": "user svc pw-0123456789"}
    )

    outcome = send_one(server)

    assert "pw-0123456789" not in (outcome.error or "")


def test_token_shared_across_event_loops() -> None:
    server = TokenServer()
    name = conn_id()

    async def run() -> None:
        async with serve_token_server(server):
            settings = token_settings(server.url, name)
            for _ in range(2):
                # Each Sender runs on its own event loop in a thread, as separate tasks do.
                await asyncio.gather(
                    *(asyncio.to_thread(asyncio.run, _send(settings)) for _ in range(3))
                )

    async def _send(settings: Any) -> None:
        async with Sender(settings, "notify", FAST) as sender:
            outcome = await sender.send(api_request())
            assert outcome.status is OutcomeStatus.SUCCEEDED

    asyncio.run(run())

    # At most one fetch per event loop that found the cache empty at the same time.
    assert 1 <= server.fetches <= 3
