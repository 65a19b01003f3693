"""Servers on 127.0.0.1 for the authentication tests: a token endpoint with an API behind it."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine import CallPolicy
from airflow_provider_journey.types import PreparedRequest

FAST = CallPolicy(backoff_base=0.01, backoff_max=0.05)


@dataclass
class TokenServer:
    """Issues tokens that expire after ``lifetime`` seconds and checks them on /api.

    ``revoked`` tokens are answered with 401 even before they expire.
    """

    lifetime: float = 60.0
    token_response: Any = None
    token_status: int = 200
    issued: dict[str, float] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    api_tokens: list[str | None] = field(default_factory=list)
    url: str = ""
    _numbers: Any = field(default_factory=lambda: itertools.count(1))

    async def token(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.token_requests.append(
            {
                "method": request.method,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        value = f"tok-{next(self._numbers)}-0123456789"
        self.issued[value] = time.monotonic() + self.lifetime
        if self.token_response is not None:
            document = self.token_response(value) if callable(self.token_response) else None
            if isinstance(document, (bytes, str)):
                return web.Response(status=self.token_status, body=document)
            return web.json_response(document, status=self.token_status)
        return web.json_response(
            {"access_token": value, "expires_in": self.lifetime}, status=self.token_status
        )

    async def api(self, request: web.Request) -> web.StreamResponse:
        token = _presented_token(request)
        self.api_tokens.append(token)
        expiry = self.issued.get(token or "")
        if expiry is None or token in self.revoked or time.monotonic() > expiry:
            return web.json_response({"error": "invalid token"}, status=401)
        return web.json_response({"ok": True})

    @property
    def fetches(self) -> int:
        return len(self.token_requests)


def _presented_token(request: web.Request) -> str | None:
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ")
    return request.headers.get("X-Token") or request.query.get("token")


@asynccontextmanager
async def serve_token_server(server: TokenServer) -> AsyncIterator[TokenServer]:
    """Run ``server`` on a free port of 127.0.0.1 while the block runs."""
    app = web.Application()
    app.router.add_route("*", "/token", server.token)
    app.router.add_route("*", "/api", server.api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def token_settings(
    base_url: str,
    conn_id: str,
    *,
    login: str = "svc",
    password: str = "pw-0123456789",
    **extra: Any,
) -> EndpointSettings:
    """Return checked token_endpoint settings for a test server."""
    extra.setdefault("token_url", "/token")
    extra.setdefault("token_path", "access_token")
    return EndpointSettings.from_connection_fields(
        conn_id,
        host=base_url,
        login=login,
        password=password,
        extra={"auth_type": "token_endpoint", "calls_per_period": 1_000_000, **extra},
    )


def api_request(profile_id: str = "p1") -> PreparedRequest:
    """Return a GET of /api for one profile."""
    return PreparedRequest(
        profile_id=profile_id,
        method="GET",
        path="/api",
        headers={},
        query=(),
        body=None,
        idempotency_key=f"key-{profile_id}",
    )
