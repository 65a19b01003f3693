"""Local servers for the benchmarks, each in its own process and only on 127.0.0.1.

``Nginx`` runs Debian's nginx with ``nginx.conf.template`` from a temporary directory.
``DelayServer`` runs the project's receiver (``journey-receiver``) with a fixed delay
before each response.
"""

from __future__ import annotations

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

HOST = "127.0.0.1"
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"


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
    """The project's receiver, answering after ``delay_ms`` milliseconds, in its own process."""

    def __init__(self, delay_ms: int) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._delay_ms = delay_ms
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DelayServer:
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
