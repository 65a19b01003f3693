"""The lean HTTP/1.1 client against raw asyncio servers on 127.0.0.1 that send scripted bytes."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from engine_test_server import prepared, serve, settings_for, unused_port

from airflow_provider_journey.engine import CallPolicy, Sender
from airflow_provider_journey.engine.http1 import (
    USER_AGENT,
    ConnectError,
    DisconnectedError,
    Http1Pool,
    InvalidResponseError,
    header_block,
)
from airflow_provider_journey.types import OutcomeStatus

HOST = "127.0.0.1"


@dataclass
class RawServer:
    """What a raw server saw: the request heads in order and the connections opened."""

    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    max_open: int = 0


Reply = Callable[[bytes, RawServer], Awaitable[bytes | None]]


@asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[RawServer]:
    """Serve on 127.0.0.1: for each request head, write what ``reply`` returns.

    ``reply`` returning None closes the connection without a response.
    """
    seen = RawServer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        seen.open_now += 1
        seen.max_open = max(seen.max_open, seen.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = _content_length(head)
                if length:
                    await reader.readexactly(length)
                seen.heads.append(head)
                answer = await reply(head, seen)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
        finally:
            seen.open_now -= 1
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def fixed(answer: bytes) -> Reply:
    async def reply(head: bytes, seen: RawServer) -> bytes | None:
        return answer

    return reply


def ok(body: bytes, *headers: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


def pool_for(seen: RawServer, limit: int = 4) -> Http1Pool:
    return Http1Pool(
        HOST, seen.port, ssl_context=None, limit=limit, host_header=f"{HOST}:{seen.port}"
    )


def request_bytes(seen: RawServer, method: str = "POST", body: bytes | None = b"{}") -> bytes:
    headers = [("Content-Type", "application/json")] if body is not None else []
    head = header_block(method, "/push?a=1", f"{HOST}:{seen.port}", headers, body)
    return head + (body or b"")


def exchange_once(reply: Reply, *, timeout: float = 5.0, max_body: int = 1024) -> Any:
    """Send one request to a raw server; return the response or the raised exception."""

    async def run() -> Any:
        async with raw_server(reply) as seen:
            pool = pool_for(seen)
            try:
                return await pool.request(request_bytes(seen), timeout=timeout, max_body=max_body)
            except Exception as error:
                return error
            finally:
                await pool.close()

    return asyncio.run(run())


# header_block


def test_header_block_request_line_and_defaults() -> None:
    block = header_block("POST", "/push", "api.test:8080", [("X-Journey", "welcome")], b"{}")

    lines = block.decode().split("\r\n")
    assert lines[0] == "POST /push HTTP/1.1"
    assert lines[1] == "Host: api.test:8080"
    assert "X-Journey: welcome" in lines
    assert f"User-Agent: {USER_AGENT}" in lines
    assert "Content-Length: 2" in lines
    assert block.endswith(b"\r\n\r\n")


def test_header_block_request_header_replaces_default() -> None:
    block = header_block("GET", "/", "h", [("user-agent", "crm-sync/2")], None)

    text = block.decode()
    assert "user-agent: crm-sync/2" in text
    assert USER_AGENT not in text
    assert "Content-Length" not in text


def test_header_block_empty_post_sends_zero_length() -> None:
    block = header_block("POST", "/", "h", [], None)

    assert b"Content-Length: 0\r\n" in block


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\x00b"])
def test_header_block_rejects_line_break_in_value(value: str) -> None:
    with pytest.raises(ValueError, match="'X-Trace'"):
        header_block("GET", "/", "h", [("X-Trace", value)], None)


def test_header_block_rejects_invalid_name() -> None:
    with pytest.raises(ValueError, match="not a valid HTTP header name"):
        header_block("GET", "/", "h", [("X Trace", "1")], None)


# Responses


def test_http1_reads_content_length_body() -> None:
    response = exchange_once(fixed(ok(b'{"id": 7}', "Retry-After: 3")))

    assert response.status == 200
    assert response.body == b'{"id": 7}'
    assert response.headers["retry-after"] == "3"


def test_http1_reads_chunked_body() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
    )

    response = exchange_once(fixed(answer))

    assert response.body == b"abcdefg"


def test_http1_reads_body_ended_by_close() -> None:
    async def reply(head: bytes, seen: RawServer) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"

    async def run() -> Any:
        async with raw_server(reply) as seen:
            pool = pool_for(seen)
            task = asyncio.ensure_future(
                pool.request(request_bytes(seen), timeout=5, max_body=1024)
            )
            # The raw server keeps the connection open, so end it from this side.
            while not seen.heads:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for connection in list(pool._open):
                assert connection.transport is not None
                connection.transport.close()
            result = await task
            await pool.close()
            return result

    response = asyncio.run(run())

    assert response.body == b"until the end"


def test_http1_body_over_limit_by_length_is_none() -> None:
    response = exchange_once(fixed(ok(b"x" * 100)), max_body=10)

    assert response.status == 200
    assert response.body is None


def test_http1_chunked_body_over_limit_is_none() -> None:
    chunk = b"x" * 20
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n" + chunk + b"\r\n0\r\n\r\n"
    )

    response = exchange_once(fixed(answer), max_body=10)

    assert response.body is None


def test_http1_decodes_gzip_body() -> None:
    packed = gzip.compress(b'{"status": "queued"}')

    response = exchange_once(fixed(ok(packed, "Content-Encoding: gzip")))

    assert response.body == b'{"status": "queued"}'


def test_http1_decodes_deflate_body() -> None:
    packed = zlib.compress(b"plain")

    response = exchange_once(fixed(ok(packed, "Content-Encoding: deflate")))

    assert response.body == b"plain"


def test_http1_corrupt_gzip_raises_invalid_response() -> None:
    response = exchange_once(fixed(ok(b"not gzip at all", "Content-Encoding: gzip")))

    assert isinstance(response, InvalidResponseError)
    assert "gzip" in str(response)


def test_http1_skips_interim_response() -> None:
    answer = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + ok(b"final")

    response = exchange_once(fixed(answer))

    assert response.status == 200
    assert response.body == b"final"


def test_http1_invalid_response_raises() -> None:
    response = exchange_once(fixed(b"NOT HTTP AT ALL\r\n\r\n"))

    assert isinstance(response, InvalidResponseError)
    assert f"{HOST}:" in str(response)


def test_http1_close_without_answer_raises_disconnected() -> None:
    async def reply(head: bytes, seen: RawServer) -> bytes | None:
        return None

    response = exchange_once(reply)

    assert isinstance(response, DisconnectedError)
    assert "closed the connection" in str(response)


def test_http1_refused_connection_raises_connect_error() -> None:
    async def run() -> Any:
        port = unused_port()
        pool = Http1Pool(HOST, port, ssl_context=None, limit=1, host_header=HOST)
        try:
            await pool.request(b"GET / HTTP/1.1\r\n\r\n", timeout=5, max_body=10)
        except ConnectError as error:
            return error

    error = asyncio.run(run())

    assert isinstance(error.os_error, ConnectionRefusedError)
    assert error.port > 0


def test_http1_slow_answer_times_out_and_drops_connection() -> None:
    async def reply(head: bytes, seen: RawServer) -> bytes | None:
        if len(seen.heads) == 1:
            await asyncio.sleep(1.0)
        return ok(b"late")

    async def run() -> tuple[Any, Any, int]:
        async with raw_server(reply) as seen:
            pool = pool_for(seen)
            try:
                await pool.request(request_bytes(seen), timeout=0.2, max_body=100)
                first: Any = None
            except asyncio.TimeoutError as error:
                first = error
            second = await pool.request(request_bytes(seen), timeout=5, max_body=100)
            await pool.close()
            return first, second, seen.connections

    first, second, connections = asyncio.run(run())

    assert isinstance(first, asyncio.TimeoutError)
    assert second.body == b"late"
    assert connections == 2


# The pool


def test_http1_pool_reuses_one_connection() -> None:
    async def run() -> RawServer:
        async with raw_server(fixed(ok(b"{}"))) as seen:
            pool = pool_for(seen)
            for _ in range(20):
                await pool.request(request_bytes(seen), timeout=5, max_body=100)
            await pool.close()
            return seen

    seen = asyncio.run(run())

    assert len(seen.heads) == 20
    assert seen.connections == 1


def test_http1_pool_keeps_to_its_limit() -> None:
    async def reply(head: bytes, seen: RawServer) -> bytes | None:
        await asyncio.sleep(0.02)
        return ok(b"{}")

    async def run() -> tuple[RawServer, list[Any]]:
        async with raw_server(reply) as seen:
            pool = pool_for(seen, limit=3)
            results = await asyncio.gather(
                *(pool.request(request_bytes(seen), timeout=10, max_body=100) for _ in range(30))
            )
            await pool.close()
            return seen, results

    seen, results = asyncio.run(run())

    assert [result.status for result in results] == [200] * 30
    assert seen.max_open <= 3
    assert seen.connections == 3


def test_http1_pool_opens_new_connection_after_close() -> None:
    async def reply(head: bytes, seen: RawServer) -> bytes | None:
        return ok(b"{}", "Connection: close")

    async def run() -> RawServer:
        async with raw_server(reply) as seen:
            pool = pool_for(seen, limit=1)
            results = await asyncio.gather(
                *(pool.request(request_bytes(seen), timeout=10, max_body=100) for _ in range(5))
            )
            assert all(result.status == 200 for result in results)
            await pool.close()
            return seen

    seen = asyncio.run(run())

    assert seen.connections == 5


def test_http1_wait_for_connection_counts_toward_timeout() -> None:
    async def reply(head: bytes, seen: RawServer) -> bytes | None:
        await asyncio.sleep(0.5)
        return ok(b"{}")

    async def run() -> list[Any]:
        async with raw_server(reply) as seen:
            pool = pool_for(seen, limit=1)
            results = await asyncio.gather(
                pool.request(request_bytes(seen), timeout=5, max_body=100),
                pool.request(request_bytes(seen), timeout=0.1, max_body=100),
                return_exceptions=True,
            )
            await pool.close()
            return results

    first, second = asyncio.run(run())

    assert first.status == 200
    assert isinstance(second, asyncio.TimeoutError)


# The gate before writing


def test_http1_gate_false_sends_nothing() -> None:
    async def closed_gate() -> bool:
        return False

    async def run() -> tuple[Any, RawServer]:
        async with raw_server(fixed(ok(b"{}"))) as seen:
            pool = pool_for(seen)
            result = await pool.request(
                request_bytes(seen), timeout=5, max_body=100, gate=closed_gate
            )
            await asyncio.sleep(0.05)
            await pool.close()
            return result, seen

    result, seen = asyncio.run(run())

    assert result is None
    assert seen.heads == []


def test_http1_gate_runs_once_connected() -> None:
    open_at_gate: list[int] = []

    async def run() -> Any:
        async with raw_server(fixed(ok(b"{}"))) as seen:
            pool = pool_for(seen)

            async def gate() -> bool:
                open_at_gate.append(len(pool._open))
                return True

            result = await pool.request(request_bytes(seen), timeout=5, max_body=100, gate=gate)
            await pool.close()
            return result

    result = asyncio.run(run())

    assert result.status == 200
    assert open_at_gate == [1]


def test_http1_gate_wait_survives_server_close() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(_content_length(head))
        writer.write(ok(b"{}"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    async def slow_gate() -> bool:
        await asyncio.sleep(0.3)
        return True

    async def run() -> tuple[Any, Any]:
        server = await asyncio.start_server(handle, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool(HOST, port, ssl_context=None, limit=1, host_header=f"{HOST}:{port}")
        data = header_block("POST", "/", f"{HOST}:{port}", [], b"{}") + b"{}"
        try:
            first = await pool.request(data, timeout=5, max_body=100)
            second = await pool.request(data, timeout=5, max_body=100, gate=slow_gate)
        finally:
            await pool.close()
            server.close()
            await server.wait_closed()
        return first, second

    first, second = asyncio.run(run())

    assert first.status == 200
    assert second.status == 200


# Through the Sender


def test_sender_sends_provider_user_agent() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({})

    async def run() -> str:
        async with (
            serve(handler) as (url, recorder),
            Sender(settings_for(url), "notify", CallPolicy()) as sender,
        ):
            await sender.send(prepared())
        return recorder.requests[0].headers["User-Agent"]

    assert asyncio.run(run()) == USER_AGENT


def test_sender_cross_origin_redirect_drops_authorization() -> None:
    async def final(request: web.Request) -> web.Response:
        return web.json_response({"authorization": request.headers.get("Authorization")})

    async def run() -> tuple[Any, Any]:
        async with serve(final) as (final_url, final_recorder):

            async def moved(request: web.Request) -> web.Response:
                raise web.HTTPTemporaryRedirect(final_url + "/landing")

            async with serve(moved) as (url, _):
                settings = settings_for(
                    url, auth_type="bearer", secret="s3cret-token", allow_redirects=True
                )
                policy = CallPolicy(keep_response_fields=("authorization",))
                async with Sender(settings, "notify", policy) as sender:
                    outcome = await sender.send(prepared())
        return outcome, final_recorder

    outcome, final_recorder = asyncio.run(run())

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert final_recorder.count == 1
    assert outcome.response == {"authorization": None}


def test_sender_proxied_call_sends_provider_user_agent() -> None:
    async def proxy(request: web.Request) -> web.Response:
        return web.json_response({"agent": request.headers.get("User-Agent")})

    async def run() -> Any:
        async with serve(proxy) as (proxy_url, _):
            settings = settings_for("http://127.0.0.1:9/base", proxy_url=proxy_url)
            policy = CallPolicy(keep_response_fields=("agent",))
            async with Sender(settings, "notify", policy) as sender:
                return await sender.send(prepared())

    outcome = asyncio.run(run())

    assert outcome.response == {"agent": USER_AGENT}


def test_sender_plain_http_builds_no_tls_context() -> None:
    plain = Sender(settings_for("http://127.0.0.1:9"), "notify", CallPolicy())
    unverified = Sender(
        settings_for("http://127.0.0.1:9", verify_ssl=False), "notify", CallPolicy()
    )
    secure = Sender(settings_for("https://127.0.0.1:9"), "notify", CallPolicy())

    assert plain._ssl_context() is None
    assert unverified._ssl_context() is not None
    assert secure._ssl_context() is not None
