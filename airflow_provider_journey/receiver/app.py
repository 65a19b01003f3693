"""The aiohttp application of the receiver: service paths and the ``/_receiver`` control paths."""

from __future__ import annotations

import asyncio
import json
from typing import Any, NoReturn

from aiohttp import web

from airflow_provider_journey.receiver.rules import RuleError
from airflow_provider_journey.receiver.state import ReceiverState

STATE_KEY = web.AppKey("receiver_state", ReceiverState)
# Bodies up to this size are read; larger ones get 413 from aiohttp.
MAX_BODY_BYTES = 10 * 1024 * 1024
# Statuses that must not carry a body.
BODYLESS_STATUSES = frozenset({204, 304})


def create_app(state: ReceiverState) -> web.Application:
    """Create the receiver's aiohttp application around ``state``."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = state
    app.router.add_get("/_receiver/health", _health)
    app.router.add_get("/_receiver/requests", _list_requests)
    app.router.add_get("/_receiver/stats", _stats)
    app.router.add_get("/_receiver/config", _get_config)
    app.router.add_post("/_receiver/config", _post_config)
    app.router.add_post("/_receiver/reset", _reset)
    app.router.add_route("*", "/_receiver/{tail:.*}", _unknown_control_path)
    app.router.add_route("*", "/{tail:.*}", _service)
    return app


async def _service(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    raw_body = await request.read()
    response = state.process(
        request.method, request.path, request.query.items(), request.headers, raw_body
    )

    if response.delay_seconds > 0:
        await asyncio.sleep(response.delay_seconds)

    if response.drop:
        _drop_connection(request)
    if response.text_body is not None:
        return web.Response(
            status=response.status,
            headers=response.headers,
            text=response.text_body,
            content_type="text/html",
        )
    if response.status in BODYLESS_STATUSES:
        return web.Response(status=response.status, headers=response.headers)
    return web.json_response(
        response.body, status=response.status, headers=response.headers, dumps=_dumps
    )


def _drop_connection(request: web.Request) -> NoReturn:
    """Close the client's connection without writing a response, as a crashed server would."""
    if request.transport is not None:
        request.transport.abort()
    # aiohttp ends a handler that raises CancelledError without writing anything.
    raise asyncio.CancelledError


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _list_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    records = state.records(request.query.get("path"))
    return web.json_response({"count": len(records), "requests": records}, dumps=_dumps)


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats())


async def _get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].config.to_dict())


async def _post_config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        changes = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error("Invalid config: send a JSON object.", "body")
    if not isinstance(changes, dict):
        return _error("Invalid config: send a JSON object.", "body")

    try:
        config = state.update_config(changes)
    except RuleError as error:
        return _error(str(error), error.field)
    return web.json_response(config.to_dict())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})


async def _unknown_control_path(request: web.Request) -> web.Response:
    return _error(
        f"Unknown control path {request.path}: use /_receiver/requests, stats, config, "
        "reset or health.",
        "path",
        status=404,
    )


def _error(message: str, field: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)
