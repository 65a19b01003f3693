"""Servers on 127.0.0.1 for the integration tests, and a shortcut to endpoint settings."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_httpserver import HTTPServer

from airflow_provider_journey.endpoint import EndpointSettings


@contextmanager
def http_server() -> Iterator[HTTPServer]:
    """Run a threaded pytest-httpserver on a free port of 127.0.0.1."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def base_url(server: HTTPServer) -> str:
    """Return ``http://127.0.0.1:<port>`` of a running server."""
    return f"http://127.0.0.1:{server.port}"


@contextmanager
def silent_server() -> Iterator[str]:
    """Listen on 127.0.0.1 and never accept, so connections open but no response comes.

    The kernel completes the TCP handshake for connections in the listen backlog, so a
    client connects, sends its request and then waits. Yields the base URL.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        yield f"http://127.0.0.1:{port}"


def endpoint(url: str, conn_id: str = "notify_api", **extra: Any) -> EndpointSettings:
    """Return checked endpoint settings for ``url`` with the given connection extras."""
    return EndpointSettings.from_connection_fields(conn_id, host=url, extra=extra)
