"""Airflow renders an audience's template fields when the audience is an operator argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_journey.audiences import (
    FileAudience,
    ListAudience,
    OutcomesAudience,
    SqlAudience,
)


def render(value: Any, context: dict[str, Any]) -> Any:
    operator = BaseOperator(task_id="render_audience")
    return operator.render_template(value, context)  # type: ignore[arg-type]


def test_sql_audience_query_is_rendered() -> None:
    audience = SqlAudience(
        "audience_db",
        "SELECT * FROM customers WHERE signup >= '{{ data_interval_start }}'",
        parameters={"country": "{{ params.country }}"},
    )

    render(audience, {"data_interval_start": "2026-01-01", "params": {"country": "FR"}})

    assert audience.sql == "SELECT * FROM customers WHERE signup >= '2026-01-01'"
    assert audience.parameters == {"country": "FR"}


def test_file_audience_path_is_rendered(tmp_path: Path) -> None:
    (tmp_path / "2026-01-01.jsonl").write_text('{"profile_id": "a"}\n', encoding="utf-8")
    audience = FileAudience(str(tmp_path / "{{ ds }}.jsonl"))

    render(audience, {"ds": "2026-01-01"})

    assert [profile.id for profile in audience.profiles()] == ["a"]


def test_outcomes_audience_results_is_rendered() -> None:
    audience = OutcomesAudience("/results/{{ run_id }}/push")

    render(audience, {"run_id": "manual__1"})

    assert audience.results == "/results/manual__1/push"


def test_list_audience_records_are_rendered() -> None:
    audience = ListAudience([{"profile_id": "{{ params.first }}"}])

    render(audience, {"params": {"first": "p1"}})

    assert next(audience.profiles()).id == "p1"
