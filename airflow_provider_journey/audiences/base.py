"""The audience interface, the record-to-profile conversion every reader uses, and ListAudience."""

from __future__ import annotations

import abc
import ast
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_journey.exceptions import AudienceError
from airflow_provider_journey.types import Profile

DEFAULT_ID_FIELD = "profile_id"


class Audience(abc.ABC):
    """A stream of profiles.

    ``profiles()`` reads the source lazily, so an audience of any size never sits in
    memory. ``template_fields`` names the attributes that Airflow renders with the task
    context when the audience is passed to an operator's templated argument, so a SQL
    query or a file path can use ``{{ data_interval_start }}`` or an XCom value.
    """

    template_fields: Sequence[str] = ()

    @abc.abstractmethod
    def profiles(self) -> Iterator[Profile]:
        """Yield the profiles of the audience one by one, numbering rows from 1."""

    def __iter__(self) -> Iterator[Profile]:
        return self.profiles()


def make_profile(
    record: Mapping[str, Any], *, id_field: str, row: int, where: str = "audience"
) -> Profile:
    """Build a profile from one record; a missing or empty id yields ``id=None`` with an error.

    :param where: names the source in the error, for example ``file /data/a.csv``.
    """
    value = record.get(id_field)
    if value is None or value == "":
        return Profile(
            id=None,
            attributes=record,
            row=row,
            error=(
                f"row {row} of {where} has no value in the id field {id_field!r}; "
                f"fill it in or set id_field to the column that holds the profile id"
            ),
        )
    return Profile(id=str(value), attributes=record, row=row)


def check_id_field(columns: Sequence[str], *, id_field: str, where: str) -> None:
    """Raise AudienceError when a source with a fixed set of columns lacks the id field."""
    if id_field not in columns:
        raise AudienceError(
            f"{where} has no column {id_field!r} for the profile id "
            f"(columns: {', '.join(map(repr, columns)) or 'none'}); "
            f"set id_field to the column that holds the profile id"
        )


def parse_rendered_value(text: str, *, description: str) -> Any:
    """Parse a value that Airflow rendered to a string, such as an XCom list or dict.

    Airflow renders templates to strings unless the DAG sets
    ``render_template_as_native_obj=True``. A list or dict then arrives as JSON or as
    its Python ``repr``, and this function accepts both.
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise AudienceError(
            f"{description} is the string {text[:80]!r}, which is neither JSON nor a Python "
            f"literal; pass the XCom value itself (for example task.output) or set "
            f"render_template_as_native_obj=True on the DAG"
        ) from error


class ListAudience(Audience):
    """An audience from records already in memory, for example a list pulled from XCom.

    :param records: mappings, one per profile. (templated)
    :param id_field: the key that contains the profile id.
    """

    template_fields: Sequence[str] = ("records",)

    def __init__(
        self, records: Sequence[Mapping[str, Any]] | str, id_field: str = DEFAULT_ID_FIELD
    ) -> None:
        self.records = records
        self.id_field = id_field

    def profiles(self) -> Iterator[Profile]:
        """Yield one profile per record; a record that is not a mapping yields an invalid one."""
        records = self.records
        if isinstance(records, str):
            records = parse_rendered_value(records, description="the list audience's records")
        if not isinstance(records, Sequence):
            raise AudienceError(
                f"the list audience's records must be a list of mappings, "
                f"got {type(records).__name__}"
            )

        for row, record in enumerate(records, start=1):
            if not isinstance(record, Mapping):
                yield Profile(
                    id=None,
                    attributes={},
                    row=row,
                    error=(
                        f"row {row} of the list audience is a {type(record).__name__}, "
                        f"not a mapping of attributes"
                    ),
                )
                continue
            yield make_profile(record, id_field=self.id_field, row=row, where="the list audience")
