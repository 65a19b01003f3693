"""Run a DAG file written by a test through dag.test(), and read what the run left behind."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

# Written into every test DAG file: a failure callback that appends the task id, the
# exception type and its message as one JSON line to FAILURES_FILE.
FAILURE_RECORDER = """
import json as _json


def record_failure(context):
    error = context.get("exception")
    line = {
        "task_id": context["ti"].task_id,
        "type": type(error).__name__,
        "message": str(error),
    }
    with open(FAILURES_FILE, "a", encoding="utf-8") as stream:
        stream.write(_json.dumps(line) + "\\n")
"""


def write_dag_file(folder: Path, dag_id: str, body: str) -> Path:
    """Write ``body`` as ``<folder>/dags/<dag_id>.py`` with the failure recorder in front.

    The body may use ``record_failure`` as an ``on_failure_callback``.
    """
    dags = folder / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    failures = folder / "failures.jsonl"
    header = f"FAILURES_FILE = {str(failures)!r}\n" + FAILURE_RECORDER
    path = dags / f"{dag_id}.py"
    path.write_text(header + "\n" + textwrap.dedent(body), encoding="utf-8")
    return path


def run_dag(folder: Path, dag_id: str) -> Any:
    """Parse the DAG files in ``<folder>/dags``, write them to the database and run one.

    dag.test() needs the DAG serialized in the metadata database first. Returns the
    DagRun; dag.test() does not raise when a task fails, so check its state.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=str(folder / "dags"))
    if bag.import_errors:
        raise AssertionError(f"the test DAG does not import: {bag.import_errors}")
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return bag.get_dag(dag_id).test()


def task_states(dag_run: Any) -> dict[str, str]:
    """Return the state of each task instance of a run, by task id (mapped ones joined)."""
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def failures(folder: Path) -> dict[str, dict[str, str]]:
    """Return the failures the recorder wrote, by task id."""
    path = folder / "failures.jsonl"
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {record["task_id"]: record for record in records}


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """Return the deserialized XCom value a task of the run pushed, or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).first()
        if row is None:
            return None
        return XComModel.deserialize_value(row)


def xcom_stored_size(dag_run: Any, task_id: str, key: str = "return_value") -> int:
    """Return the size in bytes of the XCom value as stored in the metadata database."""
    return len(json.dumps(xcom_value(dag_run, task_id, key)))
