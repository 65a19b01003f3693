"""SqlAudience: profiles from the rows of a SQL query, through any common-sql connection."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_journey.audiences.base import (
    DEFAULT_ID_FIELD,
    Audience,
    check_id_field,
    make_profile,
)
from airflow_provider_journey.exceptions import AudienceError
from airflow_provider_journey.types import Profile


class SqlAudience(Audience):
    """An audience from the rows of a SQL query, fetched in batches.

    The connection's hook must be a common-sql ``DbApiHook`` (Postgres, MySQL,
    Snowflake, SQLite and the others). Column names come from the cursor, and values
    keep the types the database driver returns.

    NOTE: some drivers (psycopg2's default client-side cursor among them) load the whole
    result when the query runs, whatever the batch size, so memory is flat only with
    drivers that fetch rows on demand.

    :param conn_id: the Airflow connection to query.
    :param sql: the query; use ``{{ data_interval_start }}`` and the like for an
        incremental read. (templated)
    :param parameters: query parameters in the driver's paramstyle. (templated)
    :param id_field: the column that contains the profile id.
    :param batch_size: rows fetched per ``fetchmany`` call.
    """

    template_fields: Sequence[str] = ("sql", "parameters")

    def __init__(
        self,
        conn_id: str,
        sql: str,
        *,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        id_field: str = DEFAULT_ID_FIELD,
        batch_size: int = 1000,
    ) -> None:
        if batch_size < 1:
            raise AudienceError(f"batch_size must be 1 or more, got {batch_size}")
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.id_field = id_field
        self.batch_size = batch_size

    def profiles(self) -> Iterator[Profile]:
        """Run the query and yield one profile per row."""
        hook = self._get_hook()
        where = f"the query on connection {self.conn_id!r}"
        connection = hook.get_conn()
        try:
            cursor = connection.cursor()
            try:
                if self.parameters is None:
                    cursor.execute(self.sql)
                else:
                    cursor.execute(self.sql, self.parameters)
                if cursor.description is None:
                    raise AudienceError(
                        f"{where} returned no rows or columns; the audience needs a "
                        f"SELECT that returns a {self.id_field!r} column"
                    )
                columns = [str(column[0]) for column in cursor.description]
                check_id_field(columns, id_field=self.id_field, where=where)
                yield from self._read_rows(cursor, columns, where)
            finally:
                cursor.close()
        finally:
            connection.close()

    def _read_rows(self, cursor: Any, columns: list[str], where: str) -> Iterator[Profile]:
        row = 0
        while True:
            batch = cursor.fetchmany(self.batch_size)
            if not batch:
                return
            for values in batch:
                row += 1
                record = dict(zip(columns, values, strict=True))
                yield make_profile(record, id_field=self.id_field, row=row, where=where)

    def _get_hook(self) -> Any:
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

        try:
            connection = BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException as error:
            raise AudienceError(
                f"connection {self.conn_id!r} of the SQL audience is not defined; add it "
                f"in the Airflow UI, the CLI or an AIRFLOW_CONN_{self.conn_id.upper()} "
                f"variable"
            ) from error

        try:
            hook = connection.get_hook()  # type: ignore[no-untyped-call]
        except (AirflowException, ImportError) as error:
            raise AudienceError(
                f"connection {self.conn_id!r} has type {connection.conn_type!r}, for which "
                f"no hook is installed ({error}); install the Airflow provider of that "
                f"database"
            ) from error

        if not isinstance(hook, DbApiHook):
            raise AudienceError(
                f"connection {self.conn_id!r} has type {connection.conn_type!r}, whose hook "
                f"{type(hook).__name__} is not a common-sql DbApiHook; use a database "
                f"connection"
            )
        return hook
