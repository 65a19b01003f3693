"""Fixtures for the audience tests: an Airflow home and a SQLite connection."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.providers.common.sql.hooks.sql import DbApiHook


class RecordingCursor(sqlite3.Cursor):
    """A sqlite3 cursor that records the size of each fetchmany batch and forbids fetchall."""

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        rows = super().fetchmany(size)
        SqliteTestHook.fetch_sizes.append(len(rows))
        return rows

    def fetchall(self) -> list[Any]:
        raise AssertionError("the audience must fetch rows in batches, not all at once")


class RecordingConnection(sqlite3.Connection):
    def cursor(self, factory: Any = RecordingCursor) -> Any:
        return super().cursor(factory)


class SqliteTestHook(DbApiHook):
    """A minimal DbApiHook over the standard library's sqlite3, connection host = db file.

    It records every fetchmany batch, so the tests register it for the ``sqlite``
    connection type in place of the SQLite provider's hook. The provider's own hook
    is exercised by the welcome_journey DAG tests.
    """

    conn_name_attr = "sqlite_conn_id"
    default_conn_name = "sqlite_default"
    conn_type = "sqlite"
    hook_name = "SQLite (tests)"
    fetch_sizes: list[int] = []

    def get_conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.connection.host, factory=RecordingConnection)


@pytest.fixture
def sqlite_hook_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``Connection.get_hook()`` find a hook for the ``sqlite`` connection type."""
    from airflow.sdk.providers_manager_runtime import HookInfo, ProvidersManagerTaskRuntime

    hooks = ProvidersManagerTaskRuntime().hooks
    monkeypatch.setitem(
        hooks,
        "sqlite",
        HookInfo(
            hook_class_name=f"{SqliteTestHook.__module__}.{SqliteTestHook.__qualname__}",
            connection_id_attribute_name="sqlite_conn_id",
            package_name="tests",
            hook_name=SqliteTestHook.hook_name,
            connection_type="sqlite",
            connection_testable=False,
        ),
    )


@pytest.fixture
def sqlite_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_hook_registered: None
) -> Iterator[Path]:
    """Create a SQLite file with 25 customers (one without id) as connection ``audience_db``."""
    db_path = tmp_path / "audience.db"
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "CREATE TABLE customers (profile_id TEXT, email TEXT, zip TEXT, score REAL)"
        )
        rows = [
            (f"p{number:03d}", f"user{number}@example.com", "00501", number / 2)
            for number in range(1, 25)
        ]
        rows.insert(9, (None, "noid@example.com", "10001", 0.0))
        connection.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", rows)
    connection.close()

    monkeypatch.setenv(
        "AIRFLOW_CONN_AUDIENCE_DB", f'{{"conn_type": "sqlite", "host": "{db_path}"}}'
    )
    SqliteTestHook.fetch_sizes.clear()
    yield db_path


@pytest.fixture
def fetch_sizes(sqlite_db: Path) -> list[int]:
    """The size of every fetchmany batch the test SQLite hook's cursors returned."""
    return SqliteTestHook.fetch_sizes
