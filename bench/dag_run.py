"""Run one DAG of ``bench/dags`` through ``dag.test()`` and print its wall time as JSON.

The caller sets AIRFLOW_HOME (with a migrated database), the connections and
BENCH_PROFILES in the environment.

    python bench/dag_run.py DAG_ID [--warm-up WARM_UP_DAG_ID] [--profile out.txt]

``--warm-up`` first runs another DAG through ``dag.test()`` in the same process, untimed
in the result's ``wall_s``. The first ``dag.test()`` of a process starts Airflow's
in-process API server, about 5 s here, and the later ones reuse it.
``--profile`` records ``dag.test()`` with pyinstrument and writes the report as text
(for ``.txt``) or HTML. pyinstrument samples the main thread only, so time that
``dag.test()`` spends waiting for its in-process API server shows as ``lock.acquire``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DAGS = Path(__file__).resolve().parent / "dags"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("dag_id")
    parser.add_argument("--profile", help="write a pyinstrument profile of dag.test() here")
    parser.add_argument("--warm-up", help="run this DAG through dag.test() first, in this process")
    args = parser.parse_args(argv)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    if bag.import_errors:
        print(json.dumps({"dag_id": args.dag_id, "import_errors": bag.import_errors}))
        return 1
    dag = bag.get_dag(args.dag_id)

    result: dict[str, object] = {"dag_id": args.dag_id}
    if args.warm_up:
        warm_started = time.perf_counter()
        warm_run = bag.get_dag(args.warm_up).test()
        warm_wall = time.perf_counter() - warm_started
        result["warm_up"] = {
            "dag_id": args.warm_up,
            "state": str(warm_run.state),
            "wall_s": warm_wall,
        }

    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    started = time.perf_counter()
    run = dag.test()
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        as_text = args.profile.endswith(".txt")
        report = profiler.output_text(show_all=True) if as_text else profiler.output_html()
        Path(args.profile).write_text(report, encoding="utf-8")

    result.update({"state": str(run.state), "wall_s": wall})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
