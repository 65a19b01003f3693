"""Local servers for the benchmarks, each in its own process and only on 127.0.0.1.

``Nginx`` runs Debian's nginx with ``nginx.conf.template`` from a temporary directory.
``DelayServer`` responds to every request 50 ms (or ``delay_ms``) after it arrived,
with the small asyncio server at the end of this file, and records when it sent each
response. ``ReceiverDelayServer`` runs the project's receiver (``journey-receiver``)
with the same delay; the latency benchmark used it before the asyncio server.

    python bench/servers.py delay --port PORT --delay-ms 50 [--record FILE]

runs the delay server in the foreground until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, cast

HOST = "127.0.0.1"
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
# The same 43-byte JSON body nginx returns, so both servers cost the client the same.
DELAY_BODY = b'{"message_id":"bench-1","status":"queued"}'


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until something accepts connections on the port, or raise RuntimeError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop one process started here: SIGTERM by its PID, SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def nginx_binary() -> str:
    """Return the nginx executable, or raise RuntimeError saying how to install it."""
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    if found is None:
        raise RuntimeError(
            "nginx is not installed; run 'make bench', which installs it, or "
            "'apt-get install nginx-light'"
        )
    return found


class Nginx:
    """nginx answering every request with a small JSON body on 127.0.0.1:``port``.

    :param access_log: write one ``<msec> <method> <status>`` line per request to
        ``log_path``; off by default because logging costs the server time.
    """

    def __init__(self, *, access_log: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._access_log = access_log
        self._dir = Path(tempfile.mkdtemp(prefix="journey-bench-nginx-"))
        self.log_path = self._dir / "access.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        # The worker drops root privileges, so it must be able to open the temp dir.
        self._dir.chmod(0o755)
        config = TEMPLATE.read_text(encoding="utf-8")
        config = config.replace("@PORT@", str(self.port)).replace("@DIR@", str(self._dir))
        log_setting = f"{self.log_path} bench" if self._access_log else "off"
        config = config.replace("@ACCESS_LOG@", log_setting)
        config_path = self._dir / "nginx.conf"
        config_path.write_text(config, encoding="utf-8")

        self._process = subprocess.Popen(
            [nginx_binary(), "-p", str(self._dir), "-c", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(self.port, self._process)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            # SIGTERM to the master makes nginx stop its worker and exit.
            stop(self._process)
        shutil.rmtree(self._dir, ignore_errors=True)

    def timestamps(self) -> list[float]:
        """Return the logged time of every request, in seconds since the epoch."""
        with self.log_path.open(encoding="ascii") as stream:
            return [float(line.split(" ", 1)[0]) for line in stream if line.strip()]


class DelayServer:
    """The asyncio delay server of this file in its own process, responding after ``delay_ms``.

    The server records the ``time.monotonic()`` of every response it writes and saves
    them when it stops; ``response_times()`` returns them after the ``with`` block.
    """

    def __init__(self, delay_ms: int) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._delay_ms = delay_ms
        self._dir = Path(tempfile.mkdtemp(prefix="journey-bench-delay-"))
        self.record_path = self._dir / "responses.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._response_times: list[float] | None = None

    def __enter__(self) -> DelayServer:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "delay",
            "--port",
            str(self.port),
            "--delay-ms",
            str(self._delay_ms),
            "--record",
            str(self.record_path),
        ]
        with (self._dir / "server.log").open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self._process)
        except RuntimeError as error:
            output = (self._dir / "server.log").read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"{error}; its output: {output[-2000:]}") from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            stop(self._process)
        if self.record_path.exists():
            self._response_times = json.loads(self.record_path.read_text(encoding="ascii"))
        shutil.rmtree(self._dir, ignore_errors=True)

    def response_times(self) -> list[float]:
        """Return the server's monotonic time of every response, once the server has stopped."""
        if self._response_times is None:
            raise RuntimeError("the delay server has not stopped yet, or saved no response times")
        return self._response_times


class ReceiverDelayServer:
    """The project's receiver, responding after ``delay_ms`` milliseconds, in its own process."""

    def __init__(self, delay_ms: int) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._delay_ms = delay_ms
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReceiverDelayServer:
        command = [
            sys.executable,
            "-m",
            "airflow_provider_journey.receiver",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--delay-ms",
            str(self._delay_ms),
            "--seed",
            "1",
            "--log-level",
            "WARNING",
        ]
        env = dict(os.environ)
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        wait_for_port(self.port, self._process)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            stop(self._process)


def delayed_response(keep_alive: bool) -> bytes:
    """Return the whole HTTP/1.1 response the delay server writes."""
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(DELAY_BODY)).encode("ascii")
        + b"\r\nConnection: "
        + connection
        + b"\r\n\r\n"
        + DELAY_BODY
    )


class DelayProtocol(asyncio.Protocol):
    """One client connection: parse requests with httptools and respond to each after the delay.

    The delay starts when the whole request has arrived. Requests pipelined on one
    connection get their responses in order, because each waits the same delay. A request
    that cannot be parsed closes the connection.
    """

    def __init__(self, delay: float, response_times: list[float]) -> None:
        import httptools

        self._delay = delay
        self._response_times = response_times
        self._parser = httptools.HttpRequestParser(self)
        self._parse_error = httptools.HttpParserError
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._parse_error as error:
            print(f"delay server: invalid request, connection closed: {error}", file=sys.stderr)
            if self._transport is not None:
                self._transport.close()

    def on_message_complete(self) -> None:
        """Schedule the response. httptools calls this once a request's body has arrived."""
        self._loop.call_later(self._delay, self._respond, self._parser.should_keep_alive())

    def _respond(self, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(delayed_response(keep_alive))
        self._response_times.append(time.monotonic())
        if not keep_alive:
            transport.close()


async def serve_delayed(port: int, delay: float, record: Path | None) -> None:
    """Serve on 127.0.0.1 until SIGTERM or SIGINT, then write the response times to ``record``."""
    loop = asyncio.get_running_loop()
    response_times: list[float] = []
    stopped = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stopped.set)

    server = await loop.create_server(
        lambda: DelayProtocol(delay, response_times), HOST, port, backlog=1024
    )
    async with server:
        await stopped.wait()
        if record is not None:
            record.write_text(json.dumps(response_times), encoding="ascii")


def run_event_loop(main: Any) -> None:
    """Run a coroutine on uvloop when it is installed (an Airflow dependency), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run a benchmark server in the foreground.")
    commands = parser.add_subparsers(dest="server", required=True)
    delay = commands.add_parser("delay", help="respond to every request after a fixed delay")
    delay.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    delay.add_argument("--delay-ms", type=float, default=50.0, help="delay in milliseconds")
    delay.add_argument("--record", type=Path, help="write the response times (JSON) here at stop")
    args = parser.parse_args(argv)
    run_event_loop(serve_delayed(args.port, args.delay_ms / 1000, args.record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
