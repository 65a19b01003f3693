"""Measure the engine workload at several commits against one nginx, runs interleaved.

    python bench/compare_commits.py COMMIT [COMMIT ...] [--repeats 5] [--calls 20000]

Each commit is checked out with ``git worktree`` into a temporary folder, and its own
``bench/workloads.py engine`` runs there, so the figures show what each change gained.
The runs go round-robin over the commits, so load from other work on the machine hits
every commit alike. The worktrees are removed at the end. Prints a Markdown table of
medians with the minimum and maximum.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from servers import Nginx

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("commits", nargs="+", help="commits, branches or tags to compare")
    parser.add_argument("--repeats", type=int, default=5, help="runs per commit")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per run")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight at once")
    return parser.parse_args(argv)


def add_worktree(commit: str, folder: Path) -> str:
    """Check ``commit`` out into ``folder`` and return its short id."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), commit],
        check=True,
        capture_output=True,
    )
    short = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    )
    return short.stdout.strip()


def run_engine(folder: Path, url: str, calls: int, concurrency: int) -> dict[str, float]:
    """Run the engine workload of the checkout in ``folder``; return its JSON result."""
    completed = subprocess.run(
        [
            sys.executable,
            str(folder / "bench" / "workloads.py"),
            "engine",
            "--url",
            url,
            "--calls",
            str(calls),
            "--concurrency",
            str(concurrency),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float], digits: int) -> str:
    """Format the median with the minimum and maximum in brackets."""
    middle = statistics.median(values)
    return f"{middle:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="journey-bench-commits-") as scratch:
        folders: dict[str, Path] = {}
        try:
            for index, commit in enumerate(args.commits):
                folder = Path(scratch) / f"commit-{index}"
                label = f"{commit} ({add_worktree(commit, folder)})"
                folders[label] = folder
                rates[label] = []
                cpu[label] = []

            with Nginx() as server:
                for _ in range(args.repeats):
                    for label, folder in folders.items():
                        result = run_engine(folder, server.url, args.calls, args.concurrency)
                        rates[label].append(result["calls"] / result["wall_s"])
                        cpu[label].append(result["cpu_s"] / result["calls"] * 10_000)
        finally:
            for folder in folders.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
                    check=False,
                    capture_output=True,
                )

    print(
        f"engine workload, {args.calls:,} calls, concurrency {args.concurrency}, "
        f"{args.repeats} runs each; median (min-max)\n"
    )
    print("| commit | engine calls/s | engine CPU s per 10k calls |")
    print("| --- | ---: | ---: |")
    for label in folders:
        print(f"| {label} | {spread(rates[label], 0)} | {spread(cpu[label], 2)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
