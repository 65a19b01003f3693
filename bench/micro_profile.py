"""Time the per-profile work around the HTTP call, with no server: render, outcome, record.

    python bench/micro_profile.py [--profiles N] [--repeats R]

Each stage runs the code the runner runs for every profile of the engine benchmark
(``workloads.py engine``: the push_welcome action, the same mapping and profiles):

- ``render``: ``_ActionJob._render``, which maps the profile onto the parameters and
  renders the request (path, headers, JSON payload, idempotency key).
- ``outcome``: ``OutcomeBuilder.final`` for a 200 response with nginx's JSON body,
  which parses the body and keeps the declared fields.
- ``record``: ``_ActionJob._record``, which stamps the outcome, writes its line to a
  part file in a temporary directory and counts it in the summary.

Every stage runs over all profiles once per repeat. The script prints the median and
the minimum over the repeats in microseconds of CPU time of this process per profile,
then one JSON object with the same figures on the last line. It reports CPU time, not
wall time, because on a shared machine the wall time also counts the time other
processes hold the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from workloads import ACTION_FILE, PARAMETERS, endpoint_settings, profile_record  # noqa: E402

from airflow_provider_journey.actions import load_action_file  # noqa: E402
from airflow_provider_journey.audiences import ListAudience  # noqa: E402
from airflow_provider_journey.engine.attempt import AttemptEnd, AttemptResult  # noqa: E402
from airflow_provider_journey.engine.auth.factory import make_authenticator  # noqa: E402
from airflow_provider_journey.engine.outcome_builder import OutcomeBuilder  # noqa: E402
from airflow_provider_journey.outcomes import OutcomeWriter  # noqa: E402
from airflow_provider_journey.runner import (  # noqa: E402
    RunIdentity,
    RunOptions,
    _ActionJob,
    _call_policy,
)
from airflow_provider_journey.summary import SummaryBuilder  # noqa: E402
from airflow_provider_journey.templating import ActionRenderer, ParameterMapping  # noqa: E402
from airflow_provider_journey.types import Outcome, PreparedRequest, Profile  # noqa: E402

# The body the benchmark nginx returns for every request (bench/nginx.conf.template).
NGINX_BODY = b'{"message_id":"bench-1","status":"queued"}'
RUN_CONTEXT = {"dag_id": "bench", "run_id": "run-1", "task_id": "push", "journey": "bench"}


def make_job(results_dir: Path) -> tuple[_ActionJob, OutcomeWriter]:
    """Build the runner's job for the push action, with an open writer in ``results_dir``."""
    action = load_action_file(ACTION_FILE)
    identity = RunIdentity(dag_id="bench", run_id="run-1", task_id="push")
    writer = OutcomeWriter(results_dir, try_number=1).open()
    job = _ActionJob(
        action,
        ParameterMapping(action, PARAMETERS),
        ActionRenderer(action, key_namespace=identity.key_namespace),
        SummaryBuilder(action.name, str(results_dir)),
        writer,
        set(),
        RUN_CONTEXT,
        RunOptions(concurrency=64),
    )
    return job, writer


def make_outcome_builder() -> OutcomeBuilder:
    """Build the outcome builder the sender would build for the benchmark endpoint."""
    action = load_action_file(ACTION_FILE)
    settings = endpoint_settings("http://127.0.0.1:9", 64, None)
    return OutcomeBuilder(
        action.name,
        settings.conn_id,
        "127.0.0.1:9",
        _call_policy(action, settings),
        make_authenticator(settings),
    )


def time_per_item(work: Callable[[], Any], count: int) -> float:
    """Return the CPU time of one call of ``work`` in microseconds per item."""
    started = time.process_time()
    work()
    return (time.process_time() - started) / count * 1e6


def run_once(profiles: list[Profile], scratch: Path) -> dict[str, float]:
    """Run the three stages once over ``profiles`` and return microseconds per profile."""
    job, writer = make_job(scratch)
    builder = make_outcome_builder()
    result = AttemptResult(AttemptEnd.RESPONSE, status=200, body=NGINX_BODY)
    count = len(profiles)
    requests: list[PreparedRequest | None] = []
    outcomes: list[Outcome] = []

    def render() -> None:
        for profile in profiles:
            requests.append(job._render(profile))

    def build() -> None:
        for request in requests:
            assert request is not None
            outcomes.append(builder.final(request, result, 1))

    def record() -> None:
        for outcome, profile in zip(outcomes, profiles, strict=True):
            job._record(outcome, profile)

    try:
        figures = {
            "render": time_per_item(render, count),
            "outcome": time_per_item(build, count),
            "record": time_per_item(record, count),
        }
    finally:
        writer.close()
    if job.by_status != {"succeeded": count}:
        raise RuntimeError(f"expected {count} succeeded outcomes, got {job.by_status}")
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profiles", type=int, default=20_000, help="profiles per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="runs of every stage")
    args = parser.parse_args(argv)

    records = [profile_record(index) for index in range(args.profiles)]
    profiles = list(ListAudience(records).profiles())
    runs: list[dict[str, float]] = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="journey-micro-") as scratch:
            runs.append(run_once(profiles, Path(scratch) / f"run-{repeat}"))

    summary: dict[str, Any] = {"profiles": args.profiles, "repeats": args.repeats}
    for stage in ("render", "outcome", "record"):
        values = [run[stage] for run in runs]
        median, best = statistics.median(values), min(values)
        summary[stage] = {"median_us": round(median, 2), "min_us": round(best, 2)}
        print(f"{stage:8s} {median:7.2f} us per profile (median), {best:7.2f} (min)")
    total = sum(summary[stage]["median_us"] for stage in ("render", "outcome", "record"))
    print(f"{'total':8s} {total:7.2f} us per profile (sum of medians)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
