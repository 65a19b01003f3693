"""``Receiver``: the receiver on its own event loop in a background thread, for tests and demos."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from airflow_provider_journey.receiver.app import create_app
from airflow_provider_journey.receiver.rules import ResponseRule, parse_delay, rule_from_dict
from airflow_provider_journey.receiver.shapes import DEFAULT_SERVICES, parse_services
from airflow_provider_journey.receiver.state import (
    DEFAULT_MAX_RECORDS,
    ReceiverConfig,
    ReceiverState,
    random_seed,
)

log = logging.getLogger("airflow_provider_journey.receiver")

LOOPBACK_HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0


def check_host(host: str) -> None:
    """Raise ValueError unless ``host`` is 127.0.0.1, the only address the receiver uses."""
    if host != LOOPBACK_HOST:
        raise ValueError(
            f"Invalid host {host!r}: the receiver listens on {LOOPBACK_HOST} only, "
            f"so pass {LOOPBACK_HOST} or leave the host out."
        )


def build_config(
    *,
    delay_ms: Any = None,
    rules: Iterable[ResponseRule | Mapping[str, Any]] = (),
    seed: int | None = None,
    services: Mapping[str, str] | None = None,
    require_idempotency_key: bool = True,
) -> ReceiverConfig:
    """Build a validated configuration; rules may be ``ResponseRule`` objects or JSON dicts."""
    parsed_rules = tuple(
        rule if isinstance(rule, ResponseRule) else rule_from_dict(rule, position)
        for position, rule in enumerate(rules)
    )
    return ReceiverConfig(
        delay_ms=parse_delay(delay_ms),
        rules=parsed_rules,
        seed=random_seed() if seed is None else seed,
        services=parse_services(DEFAULT_SERVICES if services is None else services),
        require_idempotency_key=require_idempotency_key,
    )


async def start_site(state: ReceiverState, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``state`` on 127.0.0.1 and return the runner and the bound port."""
    state.open_record_file()
    runner = web.AppRunner(create_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK_HOST, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        state.close_record_file()
        raise
    bound_port = int(runner.addresses[0][1])
    return runner, bound_port


class Receiver:
    """A local stand-in for push, email and other JSON services, listening on 127.0.0.1.

    Use it as a context manager, or call ``start()`` and ``stop()``::

        with Receiver(rules=[{"path": "/push", "status": 503, "first": 1}]) as receiver:
            send(receiver.url + "/push")
            assert receiver.requests("/push")[0]["status"] == 503

    ``delay_ms`` is milliseconds, fixed (20) or a range ("10-50" or (10, 50)). ``port=0``
    picks a free port. Records beyond ``max_records`` drop the oldest from memory; the
    record file and the counters keep everything.
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK_HOST,
        port: int = 0,
        record_path: str | Path | None = None,
        delay_ms: Any = None,
        rules: Iterable[ResponseRule | Mapping[str, Any]] = (),
        seed: int | None = None,
        services: Mapping[str, str] | None = None,
        require_idempotency_key: bool = True,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        check_host(host)
        config = build_config(
            delay_ms=delay_ms,
            rules=rules,
            seed=seed,
            services=services,
            require_idempotency_key=require_idempotency_key,
        )
        self.state = ReceiverState(config, record_path=record_path, max_records=max_records)
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the receiver listens on; raises RuntimeError before ``start()``."""
        if self._port is None:
            raise RuntimeError("The receiver is not running: call start() first.")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    def start(self) -> Receiver:
        """Start the event loop thread and return once the receiver is listening."""
        if self._thread is not None:
            raise RuntimeError("The receiver is already running.")

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._serve, args=(loop, ready, failure), name="journey-receiver", daemon=True
        )
        thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError(
                f"The receiver did not start within {START_TIMEOUT_SECONDS:.0f} s on port "
                f"{self._requested_port}."
            )
        if failure:
            thread.join()
            raise failure[0]

        self._loop = loop
        self._thread = thread
        log.info(
            "Receiver listening on %s (seed %d, record file %s).",
            self.url,
            self.state.config.seed,
            self.state.record_path or "none",
        )
        return self

    def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            runner, self._port = loop.run_until_complete(
                start_site(self.state, self._requested_port)
            )
        except BaseException as error:
            # start() re-raises it in the calling thread.
            failure.append(error)
            loop.close()
            ready.set()
            return

        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        """Stop serving, close the record file and wait for the thread to end."""
        if self._loop is None or self._thread is None:
            return
        url = self.url
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = None
        self._thread = None
        self.state.close_record_file()
        log.info("Receiver on %s stopped after %d requests.", url, self.state.stats()["total"])

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Return the recorded requests kept in memory, oldest first, optionally for one path."""
        return self.state.records(path)

    def stats(self) -> dict[str, Any]:
        """Return counts per path and status and the number of distinct idempotency keys."""
        return self.state.stats()

    def configure(self, **changes: Any) -> ReceiverConfig:
        """Change ``delay_ms``, ``rules``, ``seed``, ``services`` or ``require_idempotency_key``.

        Takes the same values as ``POST /_receiver/config``; rules may also be
        ``ResponseRule`` objects. Raises RuleError naming an invalid field.
        """
        if "rules" in changes:
            changes["rules"] = [
                rule.to_dict() if isinstance(rule, ResponseRule) else rule
                for rule in changes["rules"]
            ]
        if isinstance(changes.get("delay_ms"), tuple):
            changes["delay_ms"] = list(changes["delay_ms"])
        return self.state.update_config(changes)

    def reset(self) -> None:
        """Clear records and counters; configuration and record file stay."""
        self.state.reset()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
