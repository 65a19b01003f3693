"""The outcome store: part files per try, crash recovery, resume ids and latest outcomes."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_journey.outcomes import (
    OutcomeWriter,
    final_profile_ids,
    latest_outcomes,
    list_parts,
    read_outcome_records,
)
from airflow_provider_journey.types import Outcome, OutcomeStatus


def outcome(profile_id: str | None, status: OutcomeStatus, **fields: object) -> Outcome:
    return Outcome(profile_id=profile_id, action="push", status=status, **fields)  # type: ignore[arg-type]


def write_part(directory: Path, try_number: int, *outcomes: Outcome) -> Path:
    with OutcomeWriter(directory, try_number=try_number) as writer:
        for item in outcomes:
            writer.write(item)
    assert writer.path is not None
    return Path(str(writer.path))


def test_writer_creates_directory_and_part_named_by_try(tmp_path: Path) -> None:
    directory = tmp_path / "dag" / "run" / "task" / "push"

    part = write_part(directory, 2, outcome("a", OutcomeStatus.SUCCEEDED))

    assert part == directory / "part-002.jsonl"


def test_writer_writes_compact_json_lines(tmp_path: Path) -> None:
    part = write_part(
        tmp_path,
        1,
        outcome("a", OutcomeStatus.SUCCEEDED, profile={"name": "Zoë"}),
        outcome("b", OutcomeStatus.FAILED, status_code="http_500", http_status=500),
    )

    lines = part.read_text(encoding="utf-8").splitlines()

    assert len(lines) == 2
    assert '"name":"Zoë"' in lines[0]
    assert json.loads(lines[1])["status_code"] == "http_500"


def test_writer_line_reaches_file_before_close(tmp_path: Path) -> None:
    writer = OutcomeWriter(tmp_path, try_number=1).open()
    writer.write(outcome("a", OutcomeStatus.SUCCEEDED))

    on_disk = (tmp_path / "part-001.jsonl").read_text(encoding="utf-8")
    writer.close()

    assert json.loads(on_disk)["profile_id"] == "a"


def test_writer_keeps_lines_when_process_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from airflow_provider_journey.outcomes import OutcomeWriter
        from airflow_provider_journey.types import Outcome, OutcomeStatus
        writer = OutcomeWriter({str(tmp_path)!r}, try_number=1).open()
        for number in range(3):
            writer.write(Outcome(f"p{{number}}", "push", OutcomeStatus.SUCCEEDED))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )

    completed = subprocess.run([sys.executable, "-c", script], check=False, timeout=120)

    assert completed.returncode == -9
    assert final_profile_ids(tmp_path) == {"p0", "p1", "p2"}


def test_writer_encodes_sql_values(tmp_path: Path) -> None:
    profile = {"amount": decimal.Decimal("12.50"), "born": dt.date(1990, 5, 17), "raw": b"\x00\x01"}
    part = write_part(tmp_path, 1, outcome("a", OutcomeStatus.SUCCEEDED, profile=profile))

    record = json.loads(part.read_text(encoding="utf-8"))

    assert record["profile"] == {"amount": "12.50", "born": "1990-05-17", "raw": "AAE="}


def test_writer_never_overwrites_existing_part(tmp_path: Path) -> None:
    first = write_part(tmp_path, 1, outcome("a", OutcomeStatus.SUCCEEDED))
    second = write_part(tmp_path, 1, outcome("b", OutcomeStatus.SUCCEEDED))

    assert second.name == "part-001-1.jsonl"
    assert json.loads(first.read_text(encoding="utf-8"))["profile_id"] == "a"


def test_writer_rejects_write_before_open(tmp_path: Path) -> None:
    writer = OutcomeWriter(tmp_path, try_number=1)

    with pytest.raises(RuntimeError, match="not open"):
        writer.write(outcome("a", OutcomeStatus.SUCCEEDED))


def test_list_parts_orders_by_try_then_sequence(tmp_path: Path) -> None:
    for name in ["part-010.jsonl", "part-002.jsonl", "part-002-1.jsonl", "notes.txt"]:
        (tmp_path / name).write_text("", encoding="utf-8")

    names = [part.name for part in list_parts(tmp_path)]

    assert names == ["part-002.jsonl", "part-002-1.jsonl", "part-010.jsonl"]


def test_read_missing_directory_yields_nothing(tmp_path: Path) -> None:
    assert list(read_outcome_records(tmp_path / "missing")) == []


def test_read_skips_half_written_last_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    part = write_part(
        tmp_path, 1, outcome("a", OutcomeStatus.SUCCEEDED), outcome("b", OutcomeStatus.FAILED)
    )
    with part.open("ab") as stream:
        stream.write(b'{"profile_id":"c","action":"push","sta')

    with caplog.at_level(logging.WARNING):
        records = list(read_outcome_records(tmp_path))

    assert [record["profile_id"] for record in records] == ["a", "b"]
    assert "part-001.jsonl" in caplog.text
    assert "line numbers 3" in caplog.text


def test_read_continues_after_damaged_part(tmp_path: Path) -> None:
    first = write_part(tmp_path, 1, outcome("a", OutcomeStatus.SUCCEEDED))
    with first.open("ab") as stream:
        stream.write(b'{"profile_id":"b"')
    write_part(tmp_path, 2, outcome("c", OutcomeStatus.SUCCEEDED))

    ids = [record["profile_id"] for record in read_outcome_records(tmp_path)]

    assert ids == ["a", "c"]


def test_final_profile_ids_across_two_parts(tmp_path: Path) -> None:
    write_part(
        tmp_path,
        1,
        outcome("a", OutcomeStatus.SUCCEEDED),
        outcome("b", OutcomeStatus.FAILED),
        outcome(None, OutcomeStatus.INVALID, row=3),
    )
    write_part(
        tmp_path,
        2,
        outcome("a", OutcomeStatus.SKIPPED),
        outcome("c", OutcomeStatus.TIMED_OUT),
        outcome("d", OutcomeStatus.CAPPED),
        outcome("e", OutcomeStatus.INVALID),
    )

    assert final_profile_ids(tmp_path) == {"a", "b", "c", "d", "e"}


def test_final_profile_ids_leaves_out_skipped_only(tmp_path: Path) -> None:
    write_part(tmp_path, 3, outcome("x", OutcomeStatus.SKIPPED))

    assert final_profile_ids(tmp_path) == set()


def test_final_profile_ids_leaves_out_half_written_line(tmp_path: Path) -> None:
    part = write_part(tmp_path, 1, outcome("a", OutcomeStatus.SUCCEEDED))
    line = json.dumps(outcome("b", OutcomeStatus.SUCCEEDED).to_record())
    with part.open("ab") as stream:
        stream.write(line[: len(line) // 2].encode())

    assert final_profile_ids(tmp_path) == {"a"}


def test_latest_outcomes_prefers_final_over_skipped(tmp_path: Path) -> None:
    write_part(
        tmp_path, 1, outcome("a", OutcomeStatus.FAILED), outcome("b", OutcomeStatus.SUCCEEDED)
    )
    write_part(tmp_path, 2, outcome("a", OutcomeStatus.SKIPPED), outcome("c", OutcomeStatus.FAILED))

    latest = {record["profile_id"]: record["status"] for record in latest_outcomes(tmp_path)}

    assert latest == {"a": "failed", "b": "succeeded", "c": "failed"}


def test_latest_outcomes_takes_last_final_record(tmp_path: Path) -> None:
    write_part(tmp_path, 1, outcome("a", OutcomeStatus.TIMED_OUT))
    write_part(tmp_path, 2, outcome("a", OutcomeStatus.SUCCEEDED))

    statuses = [record["status"] for record in latest_outcomes(tmp_path)]

    assert statuses == ["succeeded"]


def test_latest_outcomes_keeps_skipped_without_final(tmp_path: Path) -> None:
    write_part(tmp_path, 1, outcome("b", OutcomeStatus.SUCCEEDED))
    write_part(tmp_path, 2, outcome("a", OutcomeStatus.SKIPPED))

    ids = [record["profile_id"] for record in latest_outcomes(tmp_path)]

    assert ids == ["b", "a"]


def test_latest_outcomes_dedupes_records_without_id_by_row(tmp_path: Path) -> None:
    write_part(tmp_path, 1, outcome(None, OutcomeStatus.INVALID, row=4, error="first"))
    write_part(tmp_path, 2, outcome(None, OutcomeStatus.INVALID, row=4, error="second"))

    errors = [record["error"] for record in latest_outcomes(tmp_path)]

    assert errors == ["second"]


def test_latest_outcomes_single_part_in_write_order(tmp_path: Path) -> None:
    write_part(
        tmp_path, 1, *(outcome(f"p{number}", OutcomeStatus.SUCCEEDED) for number in range(5))
    )

    ids = [record["profile_id"] for record in latest_outcomes(tmp_path)]

    assert ids == ["p0", "p1", "p2", "p3", "p4"]


def test_store_works_on_object_storage_path(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/results/push"

    with OutcomeWriter(url, try_number=1) as writer:
        writer.write(outcome("a", OutcomeStatus.SUCCEEDED))
    with OutcomeWriter(url, try_number=2) as writer:
        writer.write(outcome("a", OutcomeStatus.SKIPPED))
        writer.write(outcome("b", OutcomeStatus.FAILED))

    assert type(writer.path).__name__ == "ObjectStoragePath"
    assert final_profile_ids(url) == {"a", "b"}
    assert [record["status"] for record in latest_outcomes(url)] == ["succeeded", "failed"]
