"""A lean HTTP/1.1 client for one origin: keep-alive connections, whole responses, a deadline.

The engine sends one small request per profile, so the client's own CPU time per call
sets the ceiling of a run. ``aiohttp.ClientSession`` spends more CPU per call than all
the rest of the engine (templating, capping, outcomes) together. This client does only
what the engine needs:

- one origin (scheme, host, port), plain TCP or TLS, no proxy;
- a bounded pool of keep-alive connections, handed to waiters in arrival order;
- a request written in one piece: request line, headers and a body that is already
  encoded;
- a response read whole with ``httptools`` (llhttp), up to a size limit, decoding
  gzip and deflate;
- a timeout for the wait for a connection and connecting, and one for sending and
  reading.

Redirects and proxies stay with aiohttp (see ``Sender``). Failures raise the exceptions
below, which carry the host and port but never a header or body.

NOTE: there is no cookie jar. A cookie that the endpoint sets (a load balancer's
stickiness cookie, say) is not sent back, where aiohttp's session kept and sent it.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httptools

from airflow_provider_journey import __version__

USER_AGENT = f"airflow-provider-journey/{__version__}"
# Sent unless the request sets them; aiohttp sends the same Accept and Accept-Encoding.
DEFAULT_HEADERS = (
    ("User-Agent", USER_AGENT),
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
)
# The default header lines by lower-case name, in the order they are sent.
_DEFAULTS_TO_SEND = {name.lower(): f"{name}: {value}\r\n" for name, value in DEFAULT_HEADERS}
# Maximum interval, in seconds, between two sweeps of a pool's request deadlines.
MAX_SWEEP_SECONDS = 0.5
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})

_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE_FORBIDDEN_RE = re.compile(r"[\r\n\x00]")
# Header names already checked, with their lower-case form; actions use a handful.
_VALID_NAMES: dict[str, str] = {}
_VALID_NAMES_SIZE = 1024
_KEPT_RESPONSE_HEADERS = frozenset(
    {b"content-length", b"transfer-encoding", b"content-encoding", b"retry-after", b"location"}
)


class Http1Error(Exception):
    """A request ended without a complete response."""


class ConnectError(Http1Error):
    """No connection could be opened; ``os_error`` is the cause from the socket layer."""

    def __init__(self, host: str, port: int, os_error: OSError) -> None:
        super().__init__(f"cannot connect to {host}:{port}")
        self.host = host
        self.port = port
        self.os_error = os_error


class TlsError(Http1Error):
    """The TLS handshake failed, for example on an untrusted server certificate."""


class DisconnectedError(Http1Error):
    """The server closed or reset the connection before the response was complete."""

    def __init__(self, message: str, os_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


class InvalidResponseError(Http1Error):
    """The server sent bytes that are not a valid HTTP/1.1 response."""


@dataclass(slots=True)
class Http1Response:
    """A complete response: ``body`` is None when it was longer than the size limit."""

    status: int
    headers: dict[str, str]
    body: bytes | None


def header_block(
    method: str, target: str, host: str, headers: Iterable[tuple[str, str]], body: bytes | None
) -> bytes:
    """Encode the request line and headers, ending with the empty line before the body.

    Raise ValueError naming the header when a name is not an HTTP token or a value contains a
    line break or NUL, because such a header could smuggle a second request.
    """
    parts = [method, " ", target, " HTTP/1.1\r\nHost: ", host, "\r\n"]
    defaults = _DEFAULTS_TO_SEND
    for name, value in headers:
        lowered = _checked_name(name)
        # isprintable() is False for CR, LF and NUL, so most values need no regex.
        if not value.isprintable() and _HEADER_VALUE_FORBIDDEN_RE.search(value):
            raise ValueError(f"header {name!r} has a line break or NUL character in its value")
        if lowered in defaults:
            defaults = {key: line for key, line in defaults.items() if key != lowered}
        parts += (name, ": ", value, "\r\n")

    parts += defaults.values()
    if body is not None:
        parts += ("Content-Length: ", str(len(body)), "\r\n")
    elif method in METHODS_WITH_BODY:
        parts.append("Content-Length: 0\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def _checked_name(name: str) -> str:
    """Return the header name in lower case; raise ValueError when it is not an HTTP token."""
    lowered = _VALID_NAMES.get(name)
    if lowered is None:
        if not _HEADER_NAME_RE.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if len(_VALID_NAMES) >= _VALID_NAMES_SIZE:
            _VALID_NAMES.clear()
        lowered = _VALID_NAMES[name] = name.lower()
    return lowered


class _Connection(asyncio.Protocol):
    """One keep-alive connection; it carries one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str) -> None:
        self._loop = loop
        self._where = where
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.deadline = 0.0
        self._waiter: asyncio.Future[Http1Response] | None = None
        self._limit = 0
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._delimited = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes arrived with no request in flight, so the connection can no longer be trusted.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(
                InvalidResponseError(f"{self._where} sent an invalid HTTP response ({error})")
            )
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._delimited:
            # The body of this response ends where the connection ends.
            self._finish()
            return
        if isinstance(exc, ConnectionResetError):
            self._fail(DisconnectedError(f"connection reset by {self._where}", exc))
        else:
            message = f"{self._where} closed the connection before sending a complete response"
            self._fail(DisconnectedError(message, exc))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in _KEPT_RESPONSE_HEADERS:
            self._headers[key.decode("latin-1")] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        headers = self._headers
        self._delimited = "content-length" in headers or "transfer-encoding" in headers
        self._headers_done = True
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limit:
            # The body is over the limit, so return now and drop the connection, unread.
            self._oversized()

    def on_body(self, body: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            return
        self._size += len(body)
        if self._size > self._limit:
            self._oversized()
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            # An interim response such as 103 Early Hints; the final one follows.
            self._reset()
            return
        self.reusable = self._parser.should_keep_alive()
        self._finish()

    # requests

    def start(self, data: bytes, limit: int) -> asyncio.Future[Http1Response]:
        """Write one request and return the future of its response."""
        self._reset()
        self._limit = limit
        self.reusable = False
        waiter: asyncio.Future[Http1Response] = self._loop.create_future()
        self._waiter = waiter
        assert self.transport is not None
        self.transport.write(data)
        return waiter

    def time_out(self) -> None:
        """End the request in flight with TimeoutError and drop the connection."""
        self._fail(asyncio.TimeoutError())
        self.close()

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _finish(self) -> None:
        body = b"".join(self._chunks)
        encoding = self._headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "deflate", "x-gzip"):
            try:
                decoded = _decompress(body, encoding, self._limit)
            except zlib.error:
                self._fail(
                    InvalidResponseError(f"the {encoding} body from {self._where} is corrupt")
                )
                self.close()
                return
        else:
            decoded = body
        self._resolve(Http1Response(self._status, self._headers, decoded))

    def _oversized(self) -> None:
        self._resolve(Http1Response(self._status, self._headers, None))
        self.close()

    def _resolve(self, response: Http1Response) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, error: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes | None:
    """Decode a gzip or deflate body; return None when the decoded body is over ``limit``."""
    if encoding == "deflate" and body[:1] != b"\x78":
        decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
    else:
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
    decoded = decoder.decompress(body, limit + 1)
    return None if len(decoded) > limit else decoded


class Http1Pool:
    """Keep-alive connections to one origin, at most ``limit`` open at once.

    ``request`` waits for a free connection in arrival order when all are busy. Use
    ``close`` when done; requests in flight then fail.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        limit: int,
        host_header: str,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, got {limit!r}")
        self.host = host
        self.port = port
        self.limit = limit
        self._ssl = ssl_context
        self._host_header = host_header
        self._where = f"{host}:{port}"
        self._idle: collections.deque[_Connection] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._open: set[_Connection] = set()
        self._opening = 0
        self._closed = False
        self._busy: set[_Connection] = set()
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_interval = MAX_SWEEP_SECONDS

    @property
    def host_header(self) -> str:
        """Value of the Host header for requests to this origin."""
        return self._host_header

    async def request(
        self,
        data: bytes,
        *,
        timeout: float,
        max_body: int,
        gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> Http1Response | None:
        """Send one encoded request (``header_block`` plus body) and return its response.

        ``gate``, when given, runs once a connection is ready and right before the
        request is written. When it returns False, nothing is sent and this returns None.
        The capping slot is taken there, so the time between the grant and the request
        reaching the server leaves out the wait for a connection and the connect time.

        Raise asyncio.TimeoutError when getting a connection, or the exchange after the
        gate, takes longer than ``timeout`` seconds. Raise an ``Http1Error`` when the
        connection or the response fails.
        """
        loop = asyncio.get_running_loop()
        connection = self._idle_connection()
        if connection is None:
            connection = await self._acquire(loop, loop.time() + timeout)
        if gate is not None:
            passed = await self._pass_gate(loop, connection, gate, timeout)
            if passed is None:
                return None
            connection = passed

        self._watch(loop, connection, timeout)
        try:
            response = await connection.start(data, max_body)
        except BaseException:
            connection.close()
            raise
        finally:
            self._busy.discard(connection)
            self._release(connection)
        return response

    def _watch(
        self, loop: asyncio.AbstractEventLoop, connection: _Connection, timeout: float
    ) -> None:
        """Time the exchange on ``connection`` out after ``timeout`` seconds.

        One sweep per pool checks the deadlines of all busy connections, instead of one
        timer per request, which cost about 2 us per call. A request therefore times
        out up to a sweep interval late: an eighth of its timeout, at most 0.5 s.
        """
        connection.deadline = loop.time() + timeout
        self._busy.add(connection)
        interval = min(timeout / 8, MAX_SWEEP_SECONDS)
        if self._sweep_handle is None or interval < self._sweep_interval:
            if self._sweep_handle is not None:
                self._sweep_handle.cancel()
            self._sweep_interval = interval
            self._sweep_handle = loop.call_later(interval, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in [busy for busy in self._busy if busy.deadline <= now]:
            self._busy.discard(connection)
            connection.time_out()
        if self._busy:
            self._sweep_handle = loop.call_later(self._sweep_interval, self._sweep, loop)
        else:
            self._sweep_handle = None

    async def _pass_gate(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: _Connection,
        gate: Callable[[], Awaitable[bool]],
        timeout: float,
    ) -> _Connection | None:
        """Await the gate while holding ``connection``; return the connection to write on."""
        try:
            granted = await gate()
        except BaseException:
            self._release(connection)
            raise
        if not granted:
            self._release(connection)
            return None
        if connection.closed:
            # The server closed the idle connection during a long wait for the gate.
            self._release(connection)
            connection = await self._acquire(loop, loop.time() + timeout)
        return connection

    async def close(self) -> None:
        """Close every connection and fail the requests that wait for one."""
        self._closed = True
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    DisconnectedError(f"connection pool for {self._where} was closed")
                )

    def _idle_connection(self) -> _Connection | None:
        """Return the most recently used open idle connection, or None."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        return None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        if self._closed:
            raise DisconnectedError(f"connection pool for {self._where} is closed")
        idle = self._idle_connection()
        if idle is not None:
            return idle

        if len(self._open) + self._opening >= self.limit:
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # A connection was handed over just as this wait ended: pass it on.
                    self._release_result(waiter.result())
                raise
            finally:
                timer.cancel()
            if handed is not None:
                return handed

        return await self._connect(loop, deadline)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        self._opening += 1
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop, self._where),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                ),
                timeout=max(deadline - loop.time(), 0.0),
            )
        except (ssl.SSLError, ssl.CertificateError) as error:
            self._connection_slot_freed()
            raise TlsError(
                f"TLS handshake with {self._where} failed ({type(error).__name__})"
            ) from error
        except OSError as error:
            self._connection_slot_freed()
            raise ConnectError(self.host, self.port, error) from error
        except BaseException:
            self._connection_slot_freed()
            raise
        finally:
            self._opening -= 1
        self._open.add(protocol)
        return protocol

    def _release(self, connection: _Connection) -> None:
        if connection.reusable and not connection.closed and not self._closed:
            self._hand_over(connection)
            return
        connection.close()
        self._open.discard(connection)
        self._connection_slot_freed()

    def _release_result(self, connection: _Connection | None) -> None:
        if connection is None:
            self._connection_slot_freed()
        else:
            self._release(connection)

    def _hand_over(self, connection: _Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _connection_slot_freed(self) -> None:
        """Let the first waiter open a connection in place of one that closed."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _expire(waiter: asyncio.Future[_Connection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())
