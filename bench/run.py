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

from servers import DelayServer, Nginx, ReceiverDelayServer, nginx_binary  # noqa: E402
from workloads import max_in_window, write_jsonl_audience  # noqa: E402

from airflow_provider_journey.engine.capping import SERVER_ARRIVAL_MARGIN_SECONDS  # noqa: E402

PYTHON = sys.executable
# Delay of the latency-bound endpoint, in milliseconds.
LATENCY_MS = 50


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
    """Sections 1 and 6: the bare aiohttp loop, the lean client alone and the engine."""
    lines = [
        "### 1. Throughput against the ceiling (nginx) and 6. CPU per 10,000 calls",
        "",
        f"{args.calls:,} calls per run, {runs_each(args.repeats)}; median (min-max).",
        "",
        "| concurrency | bare aiohttp calls/s | engine calls/s | ratio engine/bare "
        "| bare CPU s per 10k | engine CPU s per 10k |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lean_lines = [
        "",
        "The engine's own HTTP/1.1 client alone (`workloads.py bare-http1`), the same calls, "
        "run between the two above:",
        "",
        "| concurrency | lean client alone calls/s | ratio engine/lean client "
        "| lean client CPU s per 10k |",
        "| ---: | ---: | ---: | ---: |",
    ]
    results = out.setdefault("throughput", {})
    with Nginx() as server:
        for concurrency in args.concurrency:
            runs: dict[str, list[dict[str, Any]]] = {"bare": [], "bare-http1": [], "engine": []}
            for _ in range(args.repeats):
                # Alternate the clients so that a noisy minute hits each of them.
                for name, found in runs.items():
                    found.append(
                        workload(name, server.url, calls=args.calls, concurrency=concurrency)
                    )
            results[str(concurrency)] = runs
            bare_rate = rates(runs["bare"])
            lean_rate = rates(runs["bare-http1"])
            engine_rate = rates(runs["engine"])
            ratios = [e / b for e, b in zip(engine_rate, bare_rate, strict=True)]
            lean_ratios = [e / b for e, b in zip(engine_rate, lean_rate, strict=True)]
            lines.append(
                f"| {concurrency} | {spread(bare_rate)} | {spread(engine_rate)} "
                f"| {spread(ratios, 2)} | {spread(cpu_per_10k(runs['bare']), 2)} "
                f"| {spread(cpu_per_10k(runs['engine']), 2)} |"
            )
            lean_lines.append(
                f"| {concurrency} | {spread(lean_rate)} | {spread(lean_ratios, 2)} "
                f"| {spread(cpu_per_10k(runs['bare-http1']), 2)} |"
            )
    return lines + lean_lines


def runs_each(repeats: int) -> str:
    """Return "1 run each" or "N runs each"."""
    return "1 run each" if repeats == 1 else f"{repeats} runs each"


def rates(runs: list[dict[str, Any]]) -> list[float]:
    """Return the calls per second of each run."""
    return [run["calls"] / run["wall_s"] for run in runs]


def cpu_per_10k(runs: list[dict[str, Any]]) -> list[float]:
    """Return the client's CPU seconds per 10,000 calls of each run."""
    return [run["cpu_s"] * 10_000 / run["calls"] for run in runs]


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


# The DAGs of bench/dags/bench_compare.py in the order each round runs them.
EMPTY_DAG = "bench_empty_task"
HTTP_OPERATOR_DAG = "bench_http_operator_expand"
REQUESTS_LOOP_DAG = "bench_python_requests_loop"
OPERATOR_DAG = "bench_custom_action_operator"


def dag_comparison(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Section 2: the same audience through HttpOperator.expand, a requests loop, the operator.

    An empty one-task DAG runs alongside as the fixed cost of ``dag.test()`` itself.
    Each round runs every DAG that still has runs left, so a noisy minute hits all.
    """
    plans = {
        EMPTY_DAG: (0, args.repeats),
        HTTP_OPERATOR_DAG: (args.http_operator_profiles, args.http_operator_repeats),
        REQUESTS_LOOP_DAG: (args.dag_profiles, args.repeats),
        OPERATOR_DAG: (args.dag_profiles, args.repeats),
    }
    walls: dict[str, list[float]] = {dag_id: [] for dag_id in plans}
    warm_walls: dict[str, list[float]] = {dag_id: [] for dag_id in plans}
    with Nginx() as server, tempfile.TemporaryDirectory(prefix="journey-bench-airflow-") as home:
        env = airflow_env(Path(home), server.url, server.port, args.dag_profiles)
        subprocess.run(
            [PYTHON, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        for round_number in range(max(runs for _, runs in plans.values())):
            for dag_id, (profiles, runs) in plans.items():
                if round_number < runs:
                    # The empty DAG ignores BENCH_PROFILES; the others read it when parsed.
                    env["BENCH_PROFILES"] = str(profiles or args.dag_profiles)
                    walls[dag_id].append(run_dag(dag_id, env))
                    warm_walls[dag_id].append(run_dag(dag_id, env, warm=True))
    out["dags"] = {
        dag_id: {
            "profiles": plans[dag_id][0],
            "wall_s": walls[dag_id],
            "warm_wall_s": warm_walls[dag_id],
        }
        for dag_id in plans
    }
    return dag_table(args, plans, walls, warm_walls)


def run_dag(dag_id: str, env: dict[str, str], *, warm: bool = False) -> float:
    """Run one DAG through ``bench/dag_run.py``; return the wall seconds of its ``dag.test()``.

    ``warm`` first runs the empty DAG through ``dag.test()`` in the same process, so the
    timed run does not pay for starting Airflow's in-process API server.
    """
    command = [PYTHON, str(BENCH_DIR / "dag_run.py"), dag_id]
    if warm:
        command += ["--warm-up", EMPTY_DAG]
    result = run_json(command, env=env)
    if result.get("state") != "success":
        raise RuntimeError(f"{dag_id} ended {result}")
    wall: float = result["wall_s"]
    return wall


def dag_table(
    args: argparse.Namespace,
    plans: dict[str, tuple[int, int]],
    walls: dict[str, list[float]],
    warm_walls: dict[str, list[float]],
) -> list[str]:
    """Return section 2's table and notes from the cold and warm wall times of each DAG."""
    lines = [
        "### 2. Against what users do today (`dag.test()`, nginx)",
        "",
        "| DAG | profiles | runs | cold wall s, median (min-max) | warm wall s, median (min-max) "
        "| cold / CustomActionOperator's cold | warm / CustomActionOperator's warm |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for dag_id, (profiles, runs) in plans.items():
        if dag_id == EMPTY_DAG:
            cold_ratio = warm_ratio = ""
        else:
            cold_ratio = dag_ratio(args, profiles, walls, dag_id)
            warm_ratio = dag_ratio(args, profiles, warm_walls, dag_id)
        lines.append(
            f"| `{dag_id}` | {profiles:,} | {runs} | {spread(walls[dag_id], 1)} "
            f"| {spread(warm_walls[dag_id], 2)} | {cold_ratio} | {warm_ratio} |"
        )
    lines += [
        "",
        "Each wall time covers one `dag.test()` call, after the DAG file is parsed. A cold "
        "run is the first `dag.test()` of a new process. It starts Airflow's in-process "
        "API server, which every later `dag.test()` of that process reuses. A warm run is "
        f"the second `dag.test()` of a new process, after one of `{EMPTY_DAG}`. "
        f"`{EMPTY_DAG}` is a `@task` that returns at once, so its cold wall time is the "
        "start-up cost that every cold run pays, and no one-task DAG's cold ratio can "
        "exceed HttpOperator's cold wall time divided by it.",
    ]
    return lines


def dag_ratio(
    args: argparse.Namespace, profiles: int, walls: dict[str, list[float]], dag_id: str
) -> str:
    """Return a DAG's median wall time over the operator DAG's, for the full audience."""
    median = statistics.median(walls[dag_id])
    operator = statistics.median(walls[OPERATOR_DAG])
    if profiles == args.dag_profiles:
        return f"{median / operator:,.1f}"
    # Scale only the part above the empty DAG's time to the full audience.
    empty = statistics.median(walls[EMPTY_DAG])
    scaled = empty + (median - empty) * args.dag_profiles / profiles
    return f"{scaled / operator:,.1f} (estimated from {profiles:,} profiles)"


def steady_rate(response_times: list[float], trim: float = 0.1) -> float:
    """Return calls per second in the steady part of a run, from the server's response times.

    The rate is the slope of a least-squares line through (response time, response number)
    over the responses left after dropping the first and the last ``trim`` share. So the
    start (process, connections, a limiter's first full window) does not count, and
    neither does the tail of the last calls in flight. On simulated runs of 4,000 to
    7,000 calls in bursts of 500 per 1.1 s, the slope stayed within 1 % of the true rate
    wherever the bursts fell, while the count between the first and the last kept
    response moved by up to 10 %.
    """
    ordered = sorted(response_times)
    drop = int(len(ordered) * trim)
    middle = ordered[drop : len(ordered) - drop]
    if len(middle) < 2 or middle[-1] == middle[0]:
        raise ValueError(f"too few responses to measure a rate: {len(response_times)}")
    numbers = [float(index) for index in range(len(middle))]
    return statistics.linear_regression(middle, numbers).slope


def delay_server(args: argparse.Namespace) -> Any:
    """Return the 50 ms server the latency section uses, by its ``--latency-server`` name."""
    if args.latency_server == "receiver":
        return ReceiverDelayServer(delay_ms=LATENCY_MS)
    return DelayServer(delay_ms=LATENCY_MS)


def latency_run(
    args: argparse.Namespace, client: str, concurrency: int, cap: int, calls: int
) -> dict[str, Any]:
    """Run one client against a fresh 50 ms server; add the wall and steady rates."""
    options: dict[str, Any] = {"calls": calls, "concurrency": concurrency}
    if client == "capped":
        options["cap"] = cap
    with delay_server(args) as server:
        run = workload(client, server.url, **options)
    run["wall_rate"] = run["calls"] / run["wall_s"]
    if isinstance(server, DelayServer):
        run["steady_rate"] = steady_rate(server.response_times())
    return run


def latency_bound(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Section 3: a 50 ms endpoint; achieved rate against min(cap, concurrency / latency)."""
    receiver = args.latency_server == "receiver"
    server_name = "the project's receiver" if receiver else "asyncio server"
    # The receiver records no response times, so only the wall rate exists for it.
    rate = "wall" if receiver else "steady"
    lines = [
        f"### 3. Latency-bound endpoint ({server_name} responding after {LATENCY_MS} ms)",
        "",
        f"| concurrency | cap calls/s | calls | expected calls/s | engine {rate} calls/s "
        f"| engine {rate} / expected | bare aiohttp {rate} calls/s "
        f"| bare {rate} / (concurrency / latency) |"
        + ("" if receiver else " engine wall calls/s | bare wall calls/s |"),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        + ("" if receiver else " ---: | ---: |"),
    ]
    results = out.setdefault("latency", [])
    latency = LATENCY_MS / 1000
    rate_key = f"{rate}_rate"
    for concurrency, cap, calls in args.latency_cases:
        engine: list[dict[str, Any]] = []
        bare: list[dict[str, Any]] = []
        for _ in range(args.repeats):
            # Alternate the two clients so that a noisy minute hits both.
            engine.append(latency_run(args, "capped", concurrency, cap, calls))
            bare.append(latency_run(args, "bare", concurrency, cap, calls))
        results.append({"concurrency": concurrency, "cap": cap, "engine": engine, "bare": bare})

        expected = min(cap, concurrency / latency)
        engine_rates = [run[rate_key] for run in engine]
        bare_rates = [run[rate_key] for run in bare]
        row = (
            f"| {concurrency} | {cap:,} | {calls:,} | {expected:,.0f} | {spread(engine_rates)} "
            f"| {spread([value / expected * 100 for value in engine_rates])} % "
            f"| {spread(bare_rates)} "
            f"| {spread([value / (concurrency / latency) * 100 for value in bare_rates])} % |"
        )
        if not receiver:
            row += (
                f" {spread([run['wall_rate'] for run in engine])} "
                f"| {spread([run['wall_rate'] for run in bare])} |"
            )
        lines.append(row)
    lines += ["", *latency_notes(args)]
    return lines


def latency_notes(args: argparse.Namespace) -> list[str]:
    """Return the text under the latency table that explains what each column measures."""
    steady = (
        "Steady calls/s is measured at the server: the slope of a least-squares line "
        "through the time and the number of each response, over the responses left after "
        "dropping the first and the last 10 %. "
    )
    if args.latency_server == "receiver":
        steady = "The receiver records no response times, so only wall rates are shown. "
    margin = SERVER_ARRIVAL_MARGIN_SECONDS
    return [
        f"Each run starts its own server and client. {steady}Wall calls/s is calls divided "
        "by the client's time from just before it loads the action (the bare loop: before "
        "it opens its session) to the end of its last call, so it also counts the start-up "
        "and the last calls in flight. The bare aiohttp loop runs at the same concurrency "
        "with no cap, as a check that the server completes concurrency / latency calls per "
        "second.",
        "",
        f"The in-memory limiter counts its cap over the period plus {margin:g} s, so over "
        f"a long run it lets through at most {1 / (1 + margin):.1%} of a cap per 1 s "
        "period. The first window's calls all go at once, which lifts the wall rate of "
        "a short capped run above that.",
    ]


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
            "httptools",
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
        help="audience of the HttpOperator.expand DAG, one mapped task per profile (50-60 ms "
        "each on a 2-core machine); for a smaller one, the time above the empty DAG's is "
        "scaled up to --dag-profiles and the ratio is marked as estimated",
    )
    parser.add_argument(
        "--http-operator-repeats",
        type=int,
        default=1,
        help="runs of the HttpOperator.expand DAG (the other DAGs run --repeats times)",
    )
    parser.add_argument(
        "--latency-server",
        choices=("asyncio", "receiver"),
        default="asyncio",
        help="50 ms server of the latency section: the asyncio server in bench/servers.py, "
        "or the project's receiver (journey-receiver --delay-ms 50)",
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
