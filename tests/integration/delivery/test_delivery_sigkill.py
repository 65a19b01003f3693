"""Crash and resume: the sending process is killed with SIGKILL mid-run, then try 2 runs.

Each try runs ``run_action`` in a child process, as an Airflow task would, against a
receiver in a process of its own. The receiver's record tells which keys were sent by
both tries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from delivery_support import read_jsonl, receiver_process

from airflow_provider_journey.outcomes import list_parts, read_outcome_records

PROFILE_COUNT = 6_000
CONCURRENCY = 32
KILL_AFTER_REQUESTS = 2_000

TRY_SCRIPT = textwrap.dedent(
    """
    import sys

    from delivery_support import NOTIFY_MAPPING, notify_action

    from airflow_provider_journey.audiences import ListAudience
    from airflow_provider_journey.endpoint import EndpointSettings
    from airflow_provider_journey.runner import RunIdentity, RunOptions, run_action

    url, results_dir, try_number, count, concurrency = sys.argv[1:6]
    profiles = [{"profile_id": f"p{i:05d}", "group": "main"} for i in range(int(count))]
    run_action(
        notify_action(),
        EndpointSettings.from_connection_fields("kill_api", host=url),
        ListAudience(profiles),
        NOTIFY_MAPPING,
        identity=RunIdentity("delivery", "sigkill", "notify", try_number=int(try_number)),
        run_context={},
        results_dir=results_dir,
        options=RunOptions(concurrency=int(concurrency)),
    )
    """
)


def start_try(
    script: Path, url: str, results_dir: Path, try_number: int
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    arguments = [url, str(results_dir), str(try_number), str(PROFILE_COUNT), str(CONCURRENCY)]
    return subprocess.Popen(
        [sys.executable, str(script), *arguments], env=env, start_new_session=True
    )


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("sigkill")
    script = folder / "one_try.py"
    script.write_text(TRY_SCRIPT, encoding="utf-8")
    record_path = folder / "requests.jsonl"
    results_dir = folder / "results"

    with receiver_process(record_path, [], seed=9, delay_ms="5-30") as url:
        first = start_try(script, url, results_dir, 1)
        deadline = time.monotonic() + 120
        while count_lines(record_path) < KILL_AFTER_REQUESTS and time.monotonic() < deadline:
            if first.poll() is not None:
                pytest.fail(f"try 1 ended with code {first.returncode} before it was killed")
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        sent_by_first_try = count_lines(record_path)

        second = start_try(script, url, results_dir, 2)
        assert second.wait(timeout=180) == 0

    requests = read_jsonl(record_path)
    return {
        "first_requests": requests[:sent_by_first_try],
        "second_requests": requests[sent_by_first_try:],
        "results_dir": results_dir,
        "first_code": first.returncode,
    }


def test_sigkill_ended_first_try(killed_run: dict[str, Any]) -> None:
    assert killed_run["first_code"] == -signal.SIGKILL


def test_sigkill_repeats_within_concurrency(killed_run: dict[str, Any]) -> None:
    first = {request["headers"]["Idempotency-Key"] for request in killed_run["first_requests"]}
    second = {request["headers"]["Idempotency-Key"] for request in killed_run["second_requests"]}
    repeated = first & second
    print(f"keys sent by try 1: {len(first)}, repeated by try 2: {len(repeated)}")

    assert len(repeated) <= CONCURRENCY


def test_sigkill_repeat_keeps_key(killed_run: dict[str, Any]) -> None:
    keys_by_profile: dict[str, set[str]] = defaultdict(set)
    for request in killed_run["first_requests"] + killed_run["second_requests"]:
        keys_by_profile[request["body"]["profile"]].add(request["headers"]["Idempotency-Key"])

    assert len(keys_by_profile) == PROFILE_COUNT
    assert {len(keys) for keys in keys_by_profile.values()} == {1}


def test_sigkill_one_final_outcome_each(killed_run: dict[str, Any]) -> None:
    final = Counter(
        record["profile_id"]
        for record in read_outcome_records(killed_run["results_dir"])
        if record["status"] != "skipped"
    )

    assert len(final) == PROFILE_COUNT
    assert max(final.values()) == 1


def test_sigkill_first_try_outcomes_kept(killed_run: dict[str, Any]) -> None:
    parts = list_parts(killed_run["results_dir"])
    first_part = [record for record in read_outcome_records(killed_run["results_dir"])][
        : _first_part_length(parts[0])
    ]
    done_by_first = {record["profile_id"] for record in first_part}
    resent = {request["body"]["profile"] for request in killed_run["second_requests"]}

    assert len(parts) == 2
    assert len(done_by_first) > 0
    assert done_by_first & resent == set()


def _first_part_length(part: Any) -> int:
    """Return the number of complete lines in a part file; a half-written last line is ignored."""
    data = part.read_bytes()
    return data.count(b"\n")
