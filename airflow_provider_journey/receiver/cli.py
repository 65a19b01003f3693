"""The ``journey-receiver`` command: run the receiver in the foreground until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from airflow_provider_journey.receiver.rules import RuleError, parse_rule
from airflow_provider_journey.receiver.server import (
    LOOPBACK_HOST,
    build_config,
    check_host,
    start_site,
)
from airflow_provider_journey.receiver.shapes import DEFAULT_SERVICES, SHAPE_CHECKS
from airflow_provider_journey.receiver.state import DEFAULT_MAX_RECORDS, ReceiverState

log = logging.getLogger("airflow_provider_journey.receiver")

DEFAULT_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``journey-receiver``."""
    parser = argparse.ArgumentParser(
        prog="journey-receiver",
        description=(
            "Run a local stand-in for push, email and other JSON services on 127.0.0.1, "
            "so journeys can be tried offline. It checks request shapes, responds with "
            "configurable errors and delays, and records every request."
        ),
        epilog=(
            "Control paths: GET /_receiver/requests[?path=/push], GET /_receiver/stats, "
            "GET|POST /_receiver/config, POST /_receiver/reset, GET /_receiver/health."
        ),
    )
    parser.add_argument(
        "--host",
        default=LOOPBACK_HOST,
        help=f"address to listen on; only {LOOPBACK_HOST} is accepted (default: {LOOPBACK_HOST})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port; 0 picks a free port and prints it (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--record",
        metavar="PATH",
        help="append every request as one JSON line to this file (default: memory only)",
    )
    parser.add_argument(
        "--delay-ms",
        metavar="MS",
        help="delay before each response in milliseconds, fixed (20) or a range (10-50) "
        "(default: no delay)",
    )
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="RULE",
        help="response rule, repeatable, tried in order: [PATH:]STATUS[:RATE][:NAME=VALUE...] "
        "such as /push:503:0.1 or 500:every=10 or *:429:rate=0.05:retry_after=2, "
        'or a JSON object such as \'{"status": 503, "first": 2}\'',
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the random rates and delays; the same seed gives the same responses "
        "(default: a random seed, logged at start)",
    )
    parser.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="PATH=KIND",
        help=f"check requests to PATH as KIND ({', '.join(SHAPE_CHECKS)}), repeatable; added "
        f"to the defaults {', '.join(f'{p}={k}' for p, k in DEFAULT_SERVICES.items())}",
    )
    parser.add_argument(
        "--no-idempotency-key-check",
        action="store_true",
        help="accept requests without an Idempotency-Key header (default: reject them with 400)",
    )
    parser.add_argument(
        "--max-records",
        type=int,
        metavar="N",
        default=DEFAULT_MAX_RECORDS,
        help="requests kept in memory for /_receiver/requests; older ones are dropped from "
        f"memory but stay in the record file (default: {DEFAULT_MAX_RECORDS})",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level of the messages on stderr (default: INFO)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``journey-receiver`` with ``argv`` (default: ``sys.argv``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    try:
        check_host(args.host)
        services = dict(DEFAULT_SERVICES)
        services.update(_parse_service_flags(args.service))
        config = build_config(
            delay_ms=args.delay_ms,
            rules=[parse_rule(text) for text in args.rule],
            seed=args.seed,
            services=services,
            require_idempotency_key=not args.no_idempotency_key_check,
        )
        state = ReceiverState(config, record_path=args.record, max_records=args.max_records)
    except (RuleError, ValueError) as error:
        parser.error(str(error))

    try:
        asyncio.run(_serve_until_stopped(state, args.port))
    except OSError as error:
        log.error("Could not listen on %s port %d: %s", LOOPBACK_HOST, args.port, error)
        return 1
    return 0


def _parse_service_flags(entries: Sequence[str]) -> dict[str, str]:
    services: dict[str, str] = {}
    for entry in entries:
        path, separator, kind = entry.partition("=")
        if not separator:
            raise ValueError(f"Invalid --service {entry!r}: expected PATH=KIND, such as /sms=any.")
        services[path] = kind
    return services


async def _serve_until_stopped(state: ReceiverState, port: int) -> None:
    runner, bound_port = await start_site(state, port)
    url = f"http://{LOOPBACK_HOST}:{bound_port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)

    # The URL goes to stdout on its own line, so scripts started with --port 0 can read it.
    print(url, flush=True)
    log.info(
        "Receiver listening on %s (seed %d, record file %s). Stop with Ctrl+C.",
        url,
        state.config.seed,
        state.record_path or "none",
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        state.close_record_file()
        log.info("Receiver on %s stopped after %d requests.", url, state.stats()["total"])


if __name__ == "__main__":
    sys.exit(main())
