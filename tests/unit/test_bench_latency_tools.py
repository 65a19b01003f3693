"""The latency benchmark's 50 ms server and its steady-rate measure."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

from run import steady_rate  # noqa: E402
from servers import DELAY_BODY, DelayServer  # noqa: E402


async def post_each(url: str, calls: int, concurrency: int) -> list[tuple[int, bytes, float]]:
    """POST ``calls`` times over ``concurrency`` keep-alive connections; return each response."""
    responses: list[tuple[int, bytes, float]] = []
    remaining = iter(range(calls))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def work() -> None:
            for _ in remaining:
                started = time.monotonic()
                async with session.post(url + "/push", json={"token": "t"}) as response:
                    body = await response.read()
                responses.append((response.status, body, time.monotonic() - started))

        await asyncio.gather(*(work() for _ in range(concurrency)))
    return responses


def test_delay_server_responds_after_delay() -> None:
    with DelayServer(delay_ms=50) as server:
        responses = asyncio.run(post_each(server.url, calls=40, concurrency=8))
    response_times = server.response_times()

    assert [status for status, _, _ in responses] == [200] * 40
    assert {body for _, body, _ in responses} == {DELAY_BODY}
    assert min(elapsed for _, _, elapsed in responses) >= 0.050
    assert len(response_times) == 40


def test_delay_server_keeps_connection_open() -> None:
    request = b"GET /push HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with (
        DelayServer(delay_ms=1) as server,
        socket.create_connection(("127.0.0.1", server.port)) as client,
    ):
        client.settimeout(5)
        client.sendall(request + request)
        received = b""
        while received.count(DELAY_BODY) < 2:
            chunk = client.recv(4096)
            assert chunk, "the server closed the connection"
            received += chunk

    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert b"Connection: keep-alive" in received


def test_delay_server_closes_on_request() -> None:
    request = b"GET /push HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with (
        DelayServer(delay_ms=1) as server,
        socket.create_connection(("127.0.0.1", server.port)) as client,
    ):
        client.settimeout(5)
        client.sendall(request)
        received = b""
        while chunk := client.recv(4096):
            received += chunk

    assert received.endswith(DELAY_BODY)
    assert b"Connection: close" in received


def test_steady_rate_of_even_responses() -> None:
    response_times = [index / 640 for index in range(5000)]

    assert steady_rate(response_times) == pytest.approx(640)


def test_steady_rate_ignores_slow_start_and_tail() -> None:
    # 500 responses in the first 2 s, 4,000 at 640 per second, then 500 more over 2 s.
    start = [index * 2 / 500 for index in range(500)]
    middle = [2 + index / 640 for index in range(4000)]
    end = [middle[-1] + (index + 1) * 2 / 500 for index in range(500)]

    assert steady_rate(start + middle + end) == pytest.approx(640, rel=0.01)


def test_steady_rate_of_capped_bursts() -> None:
    # A sliding-window cap: 500 responses at 1,280 per second, then a pause, every 1.1 s.
    response_times = [(index // 500) * 1.1 + (index % 500) / 1280 for index in range(5000)]

    assert steady_rate(response_times) == pytest.approx(500 / 1.1, rel=0.01)


def test_steady_rate_rejects_too_few_responses() -> None:
    with pytest.raises(ValueError, match="too few responses"):
        steady_rate([1.0])
