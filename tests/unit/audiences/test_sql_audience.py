"""SqlAudience against a real SQLite database through an Airflow connection from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_journey.audiences import SqlAudience
from airflow_provider_journey.exceptions import AudienceError


def test_sql_streams_rows_in_batches(fetch_sizes: list[int]) -> None:
    audience = SqlAudience("audience_db", "SELECT * FROM customers ORDER BY rowid", batch_size=4)

    profiles = list(audience.profiles())

    assert len(profiles) == 25
    assert fetch_sizes == [4, 4, 4, 4, 4, 4, 1, 0]


def test_sql_fetches_next_batch_only_when_needed(fetch_sizes: list[int]) -> None:
    audience = SqlAudience("audience_db", "SELECT * FROM customers ORDER BY rowid", batch_size=4)
    stream = audience.profiles()

    for _ in range(5):
        next(stream)
    stream.close()

    assert fetch_sizes == [4, 4]


def test_sql_yields_columns_as_attributes(sqlite_db: Path) -> None:
    audience = SqlAudience("audience_db", "SELECT * FROM customers ORDER BY rowid", batch_size=3)

    first = next(audience.profiles())

    assert first.id == "p001"
    assert first.row == 1
    assert first.attributes == {
        "profile_id": "p001",
        "email": "user1@example.com",
        "zip": "00501",
        "score": 0.5,
    }


def test_sql_row_without_id_is_invalid(sqlite_db: Path) -> None:
    audience = SqlAudience("audience_db", "SELECT * FROM customers ORDER BY rowid", batch_size=3)

    profiles = list(audience.profiles())

    assert profiles[9].id is None
    assert profiles[9].row == 10
    assert profiles[9].attributes["email"] == "noid@example.com"
    assert "row 10" in (profiles[9].error or "")


def test_sql_passes_parameters(sqlite_db: Path) -> None:
    audience = SqlAudience(
        "audience_db",
        "SELECT profile_id FROM customers WHERE score >= :minimum ORDER BY rowid",
        parameters={"minimum": 11.5},
    )

    ids = [profile.id for profile in audience.profiles()]

    assert ids == ["p023", "p024"]


def test_sql_converts_integer_id_to_string(sqlite_db: Path) -> None:
    audience = SqlAudience("audience_db", "SELECT 42 AS customer_id", id_field="customer_id")

    profile = next(audience.profiles())

    assert profile.id == "42"


def test_sql_without_id_column_raises(sqlite_db: Path) -> None:
    audience = SqlAudience("audience_db", "SELECT email FROM customers")

    with pytest.raises(AudienceError, match="no column 'profile_id'"):
        list(audience.profiles())


def test_sql_statement_without_rows_raises(sqlite_db: Path) -> None:
    audience = SqlAudience("audience_db", "CREATE TABLE other (x INTEGER)")

    with pytest.raises(AudienceError, match="returned no rows or columns"):
        list(audience.profiles())


def test_sql_missing_connection_names_conn_id(sqlite_hook_registered: None) -> None:
    audience = SqlAudience("no_such_db", "SELECT 1 AS profile_id")

    with pytest.raises(AudienceError, match="connection 'no_such_db' of the SQL audience"):
        list(audience.profiles())


def test_sql_connection_without_dbapi_hook_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NOT_A_DB", '{"conn_type": "fs", "extra": {"path": "/tmp"}}')
    audience = SqlAudience("not_a_db", "SELECT 1 AS profile_id")

    with pytest.raises(AudienceError, match="not a common-sql DbApiHook"):
        list(audience.profiles())


def test_sql_connection_type_without_hook_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ODD_DB", '{"conn_type": "no_such_type"}')
    audience = SqlAudience("odd_db", "SELECT 1 AS profile_id")

    with pytest.raises(AudienceError, match="no hook is installed"):
        list(audience.profiles())


def test_sql_batch_size_below_one_raises() -> None:
    with pytest.raises(AudienceError, match="batch_size must be 1 or more"):
        SqlAudience("audience_db", "SELECT 1", batch_size=0)
