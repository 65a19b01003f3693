"""Run one DAG of ``bench/dags`` through ``dag.test()`` and print its wall time as JSON.

The caller sets AIRFLOW_HOME (with a migrated database), the connections and
BENCH_PROFILES in the environment.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

DAGS = Path(__file__).resolve().parent / "dags"


def main(dag_id: str) -> int:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    if bag.import_errors:
        print(json.dumps({"dag_id": dag_id, "import_errors": bag.import_errors}))
        return 1
    dag = bag.get_dag(dag_id)
    started = time.perf_counter()
    run = dag.test()
    wall = time.perf_counter() - started
    print(json.dumps({"dag_id": dag_id, "state": str(run.state), "wall_s": wall}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
