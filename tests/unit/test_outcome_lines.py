"""The outcome writer's line encoding: the same bytes as ``encode_record``, also after errors."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_journey.outcomes import OutcomeWriter, encode_record
from airflow_provider_journey.types import Outcome, OutcomeStatus

OUTCOMES = [
    Outcome("a", "push", OutcomeStatus.SUCCEEDED),
    Outcome(
        profile_id='Zoë "Z" 🎉',
        action="push_welcome",
        status=OutcomeStatus.FAILED,
        status_code="http_500",
        http_status=500,
        attempts=4,
        latency_ms=12.345678901,
        response={"error": {"code": 7, "list": [1, None, "x\n"]}},
        error='HTTP 500 after 4 attempts: {"detail": "down"}',
        idempotency_key="f" * 64,
        row=12,
        profile={
            "amount": decimal.Decimal("12.50"),
            "born": dt.date(1990, 5, 17),
            "seen": dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.timezone.utc),
            "raw": b"\x00\x01",
            "tags": ("a", "b"),
            "id": uuid.UUID(int=1),
            "ratio": float("nan"),
        },
        finished_at="2026-12-04T21:35:41.123456+00:00",
    ),
    Outcome(None, "push", OutcomeStatus.INVALID, error="row 3: the profile has no id", row=3),
]


def written_lines(directory: Path, outcomes: list[Outcome]) -> list[bytes]:
    with OutcomeWriter(directory, try_number=1) as writer:
        for outcome in outcomes:
            writer.write(outcome)
    return (directory / "part-001.jsonl").read_bytes().splitlines(keepends=True)


def test_writer_lines_match_encode_record(tmp_path: Path) -> None:
    lines = written_lines(tmp_path, OUTCOMES)

    assert lines == [encode_record(outcome.to_record()) for outcome in OUTCOMES]


def test_writer_object_storage_lines_match(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/results"

    with OutcomeWriter(url, try_number=1) as writer:
        for outcome in OUTCOMES:
            writer.write(outcome)

    content = (tmp_path / "results" / "part-001.jsonl").read_bytes()
    assert content == b"".join(encode_record(outcome.to_record()) for outcome in OUTCOMES)


def test_writer_unencodable_value_writes_nothing(tmp_path: Path) -> None:
    bad = Outcome("b", "push", OutcomeStatus.SUCCEEDED, profile={"handle": object()})

    with OutcomeWriter(tmp_path, try_number=1) as writer:
        writer.write(OUTCOMES[0])
        with pytest.raises(TypeError, match="object is not JSON serializable"):
            writer.write(bad)

    content = (tmp_path / "part-001.jsonl").read_bytes()
    assert content == encode_record(OUTCOMES[0].to_record())
    assert writer.count == 1


def test_writer_circular_profile_is_value_error(tmp_path: Path) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop

    outcome = Outcome("c", "push", OutcomeStatus.SUCCEEDED, profile={"loop": loop})

    with (
        OutcomeWriter(tmp_path, try_number=1) as writer,
        pytest.raises(ValueError, match="Circular reference"),
    ):
        writer.write(outcome)


def test_writer_reuses_object_after_failed_line(tmp_path: Path) -> None:
    # The failed line leaves the encoder inside ``nested``. Encoding ``nested`` again
    # must not look like a circular reference.
    nested: dict[str, Any] = {"name": "Ana", "handle": object()}
    first = Outcome("a", "push", OutcomeStatus.SUCCEEDED, profile={"nested": nested})
    second = Outcome("b", "push", OutcomeStatus.SUCCEEDED, profile={"nested": nested})

    with OutcomeWriter(tmp_path, try_number=1) as writer:
        with pytest.raises(TypeError):
            writer.write(first)
        del nested["handle"]
        writer.write(second)

    content = (tmp_path / "part-001.jsonl").read_bytes()
    assert content == encode_record(second.to_record())
