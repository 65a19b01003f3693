"""Client workloads of the benchmarks; each call of this script runs one and prints JSON.

Every workload runs in a process of its own, started by ``bench/run.py``, so its CPU
time and peak memory belong to the client alone and no server shares its GIL.

    python bench/workloads.py bare --url URL --calls N --concurrency C
    python bench/workloads.py bare-http1 --url URL --calls N --concurrency C
    python bench/workloads.py engine --url URL --calls N --concurrency C [--profile out.html]
    python bench/workloads.py engine-file --url URL --audience FILE --concurrency C
    python bench/workloads.py capped --url URL --calls N --concurrency C --cap 2000

The output is one JSON object on the last line of stdout: ``wall_s`` (seconds of the
sending part), ``cpu_s`` (user plus system CPU seconds of this process over the same
part), ``calls`` and, for the engine, the run summary's counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_provider_journey.actions import load_action_file  # noqa: E402
from airflow_provider_journey.audiences import FileAudience, ListAudience  # noqa: E402
from airflow_provider_journey.audiences.base import Audience  # noqa: E402
from airflow_provider_journey.endpoint import EndpointSettings  # noqa: E402
from airflow_provider_journey.engine import capping  # noqa: E402
from airflow_provider_journey.engine.http1 import Http1Pool, header_block  # noqa: E402
from airflow_provider_journey.runner import RunIdentity, RunOptions, run_action  # noqa: E402

HOST = "127.0.0.1"
ACTION_FILE = ROOT / "dags" / "actions" / "push_welcome.json"
PARAMETERS = {
    "token": "{{ profile.push_token }}",
    "first_name": "{{ profile.first_name }}",
    "locale": "{{ profile.locale }}",
    "points": "{{ profile.loyalty_points }}",
    "journey": "{{ run.journey }}",
}
# The body the push action renders for profile_record(0); the bare loop sends it as is.
BARE_BODY = (
    b'{"token":"tok-0000000","message":{"title":"Welcome, Ada!","body":"0 loyalty points '
    b'are waiting for you."},"data":{"points":0,"locale":"en","campaign":"welcome"}}'
)


def profile_record(index: int) -> dict[str, Any]:
    """Return the attributes of benchmark profile number ``index``."""
    return {
        "profile_id": f"p{index:07d}",
        "push_token": f"tok-{index:07d}",
        "first_name": "Ada",
        "locale": "nl" if index % 5 == 0 else "en",
        "loyalty_points": index % 1000,
        "email": f"user{index}@example.test",
    }


def write_jsonl_audience(path: Path, count: int) -> None:
    """Write ``count`` benchmark profiles as a JSONL audience file."""
    with path.open("w", encoding="utf-8") as stream:
        for index in range(count):
            stream.write(json.dumps(profile_record(index), separators=(",", ":")))
            stream.write("\n")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bare_loop(url: str, calls: int, concurrency: int) -> None:
    """Send ``calls`` POSTs with ``concurrency`` workers and read each body: the ceiling."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    remaining = iter(range(calls))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def work() -> None:
            for _ in remaining:
                async with session.post(url + "/push", data=BARE_BODY, headers=headers) as reply:
                    await reply.read()

        await asyncio.gather(*(work() for _ in range(concurrency)))


async def bare_http1_loop(url: str, calls: int, concurrency: int) -> None:
    """Send the bare loop's POSTs through the engine's lean HTTP/1.1 client alone.

    It shows what the engine's own transport costs, without templating, capping,
    retries or outcomes.
    """
    base = URL(url)
    host_header = f"{base.host}:{base.port}"
    pool = Http1Pool(
        base.host or HOST,
        base.port or 80,
        ssl_context=None,
        limit=concurrency,
        host_header=host_header,
    )
    head = header_block(
        "POST", "/push", host_header, [("Content-Type", "application/json")], BARE_BODY
    )
    data = head + BARE_BODY
    remaining = iter(range(calls))

    async def work() -> None:
        for _ in remaining:
            response = await pool.request(data, timeout=30.0, max_body=1 << 20)
            if response.status != 200:
                raise RuntimeError(f"bare-http1: HTTP {response.status} from {url}")

    try:
        await asyncio.gather(*(work() for _ in range(concurrency)))
    finally:
        await pool.close()


def endpoint_settings(url: str, concurrency: int, cap: int | None) -> EndpointSettings:
    """Return the benchmark endpoint: default capping (300,000 per minute) unless ``cap``."""
    extra: dict[str, Any] = {"max_connections": concurrency}
    if cap is not None:
        extra["calls_per_period"] = cap
        extra["period_seconds"] = 1
    return EndpointSettings.from_connection_fields("bench_push", host=url, extra=extra)


def run_engine(
    url: str, audience: Audience, concurrency: int, cap: int | None = None
) -> dict[str, Any]:
    """Run the push action over the audience with the provider's runner; return the summary."""
    action = load_action_file(ACTION_FILE)
    settings = endpoint_settings(url, concurrency, cap)
    identity = RunIdentity(dag_id="bench", run_id="run-1", task_id="push")
    run_context = {"dag_id": "bench", "run_id": "run-1", "task_id": "push", "journey": "bench"}
    options = RunOptions(concurrency=concurrency, progress_interval=3600.0)
    with tempfile.TemporaryDirectory(prefix="journey-bench-results-") as results:
        return run_action(
            action,
            settings,
            audience,
            PARAMETERS,
            identity=identity,
            run_context=run_context,
            results_dir=Path(results) / "push_welcome",
            options=options,
        )


class RecordingLimiter:
    """Wraps the process limiter of the endpoint and records the time of every grant."""

    def __init__(self, inner: capping.Limiter) -> None:
        self.inner = inner
        self.grants: list[float] = []

    async def acquire(self) -> bool:
        granted = await self.inner.acquire()
        if granted:
            self.grants.append(time.time())
        return granted


def max_in_window(timestamps: list[float], window: float) -> int:
    """Return the most timestamps that fall into any half-open window of ``window`` seconds."""
    ordered = sorted(timestamps)
    best = 0
    start = 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "workload", choices=("bare", "bare-http1", "engine", "engine-file", "capped")
    )
    parser.add_argument("--url", required=True, help="base URL of the server on 127.0.0.1")
    parser.add_argument("--calls", type=int, default=10_000, help="number of calls to send")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight at once")
    parser.add_argument("--audience", help="JSONL audience file for engine-file")
    parser.add_argument("--cap", type=int, help="capping: calls per second (capped workload)")
    parser.add_argument(
        "--profile", help="write a pyinstrument profile to this path (text for .txt, else HTML)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")

    result: dict[str, Any] = {"workload": args.workload, "concurrency": args.concurrency}
    audience: Audience
    if args.workload == "engine-file":
        audience = FileAudience(args.audience)
    else:
        audience = ListAudience([profile_record(index) for index in range(args.calls)])

    recorder = None
    if args.workload == "capped":
        settings = endpoint_settings(args.url, args.concurrency, args.cap)
        limiter = capping.limiter_for(settings)
        recorder = RecordingLimiter(limiter)
        # The runner asks limiter_for(); point the registry entry at the recorder.
        for key, registered in list(capping._registry.items()):
            if registered is limiter:
                capping._registry[key] = recorder

    if profiler is not None:
        profiler.start()
    started, cpu_started = time.perf_counter(), cpu_seconds()
    if args.workload == "bare":
        asyncio.run(bare_loop(args.url, args.calls, args.concurrency))
        result["calls"] = args.calls
    elif args.workload == "bare-http1":
        asyncio.run(bare_http1_loop(args.url, args.calls, args.concurrency))
        result["calls"] = args.calls
    else:
        summary = run_engine(args.url, audience, args.concurrency, args.cap)
        result["calls"] = summary["total"]
        result["counts"] = {key: value for key, value in summary["counts"].items() if value}
        result["attempts"] = summary["attempts"]
    result["wall_s"] = time.perf_counter() - started
    result["cpu_s"] = cpu_seconds() - cpu_started
    if profiler is not None:
        profiler.stop()
        as_text = args.profile.endswith(".txt")
        report = profiler.output_text(show_all=False) if as_text else profiler.output_html()
        Path(args.profile).write_text(report, encoding="utf-8")

    if recorder is not None:
        result["client_max_per_1s"] = max_in_window(recorder.grants, 1.0)
        result["grants"] = len(recorder.grants)
        result["grant_span_s"] = max(recorder.grants) - min(recorder.grants)
    result["vm_hwm_kib"] = _vm_hwm_kib()
    print(json.dumps(result))
    return 0


def _vm_hwm_kib() -> int | None:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
