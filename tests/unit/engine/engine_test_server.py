"""A scripted aiohttp server on 127.0.0.1 for the engine tests, run inside ``asyncio.run``."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.types import PreparedRequest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request as the server received it."""

    at: float
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Requests the server received, and the most it handled at the same time."""

    requests: list[Seen] = field(default_factory=list)
    active: int = 0
    max_active: int = 0

    @property
    def count(self) -> int:
        return len(self.requests)


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, Recorder]]:
    """Run ``handler`` for every request on a free port; yield the base URL and the recorder."""
    recorder = Recorder()

    async def recording(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder.requests.append(
            Seen(
                at=time.monotonic(),
                method=request.method,
                path=request.path,
                query=list(request.query.items()),
                headers=dict(request.headers),
                body=body,
            )
        )
        recorder.active += 1
        recorder.max_active = max(recorder.max_active, recorder.active)
        try:
            return await handler(request)
        finally:
            recorder.active -= 1

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording)
    # Cancel a handler when its client goes away, so a sleeping handler ends with the test.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", recorder
    finally:
        await runner.cleanup()


def unused_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (bound once, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def settings_for(
    base_url: str, conn_id: str = "test_endpoint", **fields: object
) -> EndpointSettings:
    """Return endpoint settings for a test server, with a generous cap unless given."""
    fields.setdefault("calls_per_period", 1_000_000)
    return EndpointSettings(conn_id=conn_id, base_url=base_url, **fields)  # type: ignore[arg-type]


def prepared(
    profile_id: str = "p1",
    *,
    method: str = "POST",
    path: str = "/hook",
    body: bytes | None = b'{"hello": "world"}',
    headers: dict[str, str] | None = None,
    query: tuple[tuple[str, str], ...] = (),
) -> PreparedRequest:
    """Return a prepared request with an idempotency key derived from the profile id."""
    key = f"key-{profile_id}"
    return PreparedRequest(
        profile_id=profile_id,
        method=method,
        path=path,
        headers={"Idempotency-Key": key, **(headers or {})},
        query=query,
        body=body,
        idempotency_key=key,
    )
