"""Run the benchmark suite and print the figures as Markdown; ``make bench`` calls this.

Each measurement runs its client in a fresh process (``workloads.py`` or
``dag_run.py``) against a server in another process on 127.0.0.1, and repeats
``--repeats`` times; the tables show the median and the range. The raw results go to
``bench/results/<UTC time>.json``. Benchmarks only report: nothing here fails on a
slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from servers import DelayServer, Nginx, nginx_binary  # noqa: E402
from workloads import max_in_window, write_jsonl_audience  # noqa: E402

from airflow_provider_journey.engine.capping import SERVER_ARRIVAL_MARGIN_SECONDS  # noqa: E402

PYTHON = sys.executable


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a client process and return the JSON object on the last line of its output."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}: {done.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def workload(name: str, url: str, **options: Any) -> dict[str, Any]:
    command = [PYTHON, str(BENCH_DIR / "workloads.py"), name, "--url", url]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    return run_json(command)


def spread(values: list[float], digits: int = 0) -> str:
    """Format the median with the range, such as ``3,120 (2,900-3,300)``."""
    form = f"{{:,.{digits}f}}"
    median = form.format(statistics.median(values))
    return f"{median} ({form.format(min(values))}-{form.format(max(values))})"


def throughput(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Section 1 and 6: bare aiohttp loop against the engine at several concurrencies."""
    lines = [
        "### 1. Throughput against the ceiling (nginx) and 6. CPU per 10,000 calls",
        "",
        f"{args.calls:,} calls per run, {args.repeats} runs each; median (min-max).",
        "",
        "| concurrency | bare aiohttp calls/s | engine calls/s | ratio engine/bare "
        "| bare CPU s per 10k | engine CPU s per 10k |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    results = out.setdefault("throughput", {})
    with Nginx() as server:
        for concurrency in args.concurrency:
            bare: list[dict[str, Any]] = []
            engine: list[dict[str, Any]] = []
            for _ in range(args.repeats):
                # Alternate the two clients so that a noisy minute hits both.
                bare.append(workload("bare", server.url, calls=args.calls, concurrency=concurrency))
                engine.append(
                    workload("engine", server.url, calls=args.calls, concurrency=concurrency)
                )
            results[str(concurrency)] = {"bare": bare, "engine": engine}
            bare_rate = [run["calls"] / run["wall_s"] for run in bare]
            engine_rate = [run["calls"] / run["wall_s"] for run in engine]
            ratios = [e / b for e, b in zip(engine_rate, bare_rate, strict=True)]
            bare_cpu = [run["cpu_s"] * 10_000 / run["calls"] for run in bare]
            engine_cpu = [run["cpu_s"] * 10_000 / run["calls"] for run in engine]
            lines.append(
                f"| {concurrency} | {spread(bare_rate)} | {spread(engine_rate)} "
                f"| {spread(ratios, 2)} | {spread(bare_cpu, 2)} | {spread(engine_cpu, 2)} |"
            )
    return lines


def airflow_env(home: Path, nginx_url: str, port: int, profiles: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(BENCH_DIR / "dags"),
            "AIRFLOW__JOURNEY__RESULTS_BASE": str(home / "results"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_BENCH_HTTP": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
            ),
            "AIRFLOW_CONN_JOURNEY_PUSH": json.dumps(
                {"conn_type": "custom_action", "host": nginx_url}
            ),
            "BENCH_PROFILES": str(profiles),
        }
    )
    return env


def dag_comparison(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Section 2: the same audience through HttpOperator.expand, a requests loop, the operator."""
    lines = [
        "### 2. Against what users do today (`dag.test()`, nginx)",
        "",
        "| DAG | profiles | runs | wall s, median (min-max) | per profile ms "
        "| est. s for 1,000 | times slower than CustomActionOperator |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    plans = [
        ("bench_http_operator_expand", args.http_operator_profiles, 1),
        ("bench_python_requests_loop", args.dag_profiles, args.repeats),
        ("bench_custom_action_operator", args.dag_profiles, args.repeats),
    ]
    results = out.setdefault("dags", {})
    with Nginx() as server, tempfile.TemporaryDirectory(prefix="journey-bench-airflow-") as home:
        env = airflow_env(Path(home), server.url, server.port, args.dag_profiles)
        subprocess.run(
            [PYTHON, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        per_thousand: dict[str, float] = {}
        for dag_id, profiles, runs in plans:
            env["BENCH_PROFILES"] = str(profiles)
            walls = []
            for _ in range(runs):
                result = run_json([PYTHON, str(BENCH_DIR / "dag_run.py"), dag_id], env=env)
                if result.get("state") != "success":
                    raise RuntimeError(f"{dag_id} ended {result}")
                walls.append(result["wall_s"])
            results[dag_id] = {"profiles": profiles, "wall_s": walls}
            per_thousand[dag_id] = statistics.median(walls) * 1000 / profiles
        reference = per_thousand["bench_custom_action_operator"]
        for dag_id, profiles, runs in plans:
            walls = results[dag_id]["wall_s"]
            estimate = per_thousand[dag_id]
            lines.append(
                f"| `{dag_id}` | {profiles:,} | {runs} | {spread(walls, 1)} "
                f"| {estimate:.2f} | {estimate:,.1f} | {estimate / reference:,.1f} |"
            )
    lines += [
        "",
        "The wall time covers `dag.test()` only, after the DAG file is parsed. "
        '"est. s for 1,000" scales a run linearly to 1,000 profiles.',
    ]
    return lines


def latency_bound(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Section 3: a 50 ms endpoint; achieved rate against min(cap, concurrency / latency)."""
    lines = [
        "### 3. Latency-bound endpoint (receiver answering after 50 ms)",
        "",
        "| concurrency | cap calls/s | calls | expected calls/s "
        "| achieved calls/s, median (min-max) | achieved / expected |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    results = out.setdefault("latency", [])
    latency = 0.050
    with DelayServer(delay_ms=50) as server:
        for concurrency, cap, calls in args.latency_cases:
            rates = []
            for _ in range(args.repeats):
                run = workload("capped", server.url, calls=calls, concurrency=concurrency, cap=cap)
                rates.append(run["calls"] / run["wall_s"])
                results.append({"concurrency": concurrency, "cap": cap, **run})
            expected = min(cap, concurrency / latency)
            shares = [rate / expected for rate in rates]
            lines.append(
                f"| {concurrency} | {cap:,} | {calls:,} | {expected:,.0f} | {spread(rates)} "
                f"| {spread([share * 100 for share in shares])} % |"
            )
    lines += [
        "",
        "Achieved calls/s is profiles divided by the run's wall time, so the start and "
        "the last slow calls count against it.",
    ]
    return lines


def memory(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Section 4: peak RSS of the runner over JSONL audiences of growing size."""
    lines = [
        "### 4. Memory (JSONL audience file, nginx, concurrency 64)",
        "",
        "| profiles | peak RSS MiB (VmHWM) | wall s | calls/s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    results = out.setdefault("memory", {})
    with Nginx() as server, tempfile.TemporaryDirectory(prefix="journey-bench-audience-") as tmp:
        for count in args.memory_profiles:
            audience = Path(tmp) / f"audience-{count}.jsonl"
            write_jsonl_audience(audience, count)
            run = workload(
                "engine-file", server.url, audience=audience, concurrency=64, calls=count
            )
            audience.unlink()
            results[str(count)] = run
            peak = run["vm_hwm_kib"] / 1024
            lines.append(
                f"| {count:,} | {peak:,.1f} | {run['wall_s']:,.1f} "
                f"| {run['calls'] / run['wall_s']:,.0f} |"
            )
    return lines


def capping(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Section 5: a cap of N calls per second held for the run, seen by the server."""
    cap, seconds = args.cap, args.cap_seconds
    calls = cap * seconds
    lines = [
        f"### 5. Capping precision ({cap:,} calls per second, {calls:,} calls, nginx)",
        "",
        "| run | max calls in any 1 s window (server) | max in any 1 s window (client grants) "
        "| calls/s over the run | share of the cap used |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    results = out.setdefault("capping", [])
    for number in range(1, args.repeats + 1):
        with Nginx(access_log=True) as server:
            run = workload("capped", server.url, calls=calls, concurrency=64, cap=cap)
            time.sleep(0.5)
            stamps = server.timestamps()
        server_max = max_in_window(stamps, 1.0)
        # A sliding window lets ``cap`` calls through at once and then ``cap`` per
        # second, so N calls at full use span (N - cap) / cap seconds: the rate is
        # calls over (span + 1 s).
        rate = len(stamps) / (max(stamps) - min(stamps) + 1.0)
        run["server_max_per_1s"] = server_max
        results.append(run)
        lines.append(
            f"| {number} | {server_max:,} | {run['client_max_per_1s']:,} | {rate:,.0f} "
            f"| {rate / cap:.1%} |"
        )
    lines += [
        "",
        "nginx logs each request when it has answered, with millisecond resolution. The "
        "in-memory limiter counts its cap over the period plus "
        f"{SERVER_ARRIVAL_MARGIN_SECONDS:g} s, because each call reaches the server a "
        "different delay after its grant; the share of the cap used is at most "
        f"{1 / (1 + SERVER_ARRIVAL_MARGIN_SECONDS):.1%} for a 1 s period.",
    ]
    return lines


def machine() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    nginx = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True).stderr.strip()
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in (
            "aiohttp",
            "jinja2",
            "apache-airflow",
            "apache-airflow-providers-http",
            "requests",
        )
    )
    return [
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu}, {memory_kib / 1024 / 1024:.1f} GiB",
        f"- Python {platform.python_version()} on {platform.platform()}",
        f"- {versions}; {nginx}",
        f"- command: `{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`",
    ]


SECTIONS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], list[str]]] = {
    "throughput": throughput,
    "dags": dag_comparison,
    "latency": latency_bound,
    "memory": memory,
    "capping": capping,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per throughput run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--dag-profiles", type=int, default=1000)
    parser.add_argument(
        "--http-operator-profiles",
        type=int,
        default=1000,
        help="audience of the HttpOperator.expand DAG; a smaller one is scaled up linearly",
    )
    parser.add_argument("--memory-profiles", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cap", type=int, default=2000, help="capping: calls per second")
    parser.add_argument("--cap-seconds", type=int, default=20)
    args = parser.parse_args(argv)
    # (concurrency, cap per second, calls): one case bound by concurrency, one by the cap.
    args.latency_cases = [(32, 100_000, 5_000), (64, 500, 5_000)]
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out: dict[str, Any] = {"argv": argv}
    report = ["## Results", "", *machine(), ""]
    started = time.monotonic()
    for name in args.sections:
        section_started = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report += [*SECTIONS[name](args, out), ""]
        print(f"  {name} took {time.monotonic() - section_started:.0f} s", file=sys.stderr)
    report.append(f"Whole run: {time.monotonic() - started:.0f} s.")

    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (results_dir / f"{stamp}.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    (results_dir / f"{stamp}.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
