"""FileAudience: profiles read line by line from a CSV or JSONL file, local or in object storage."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_journey.audiences.base import (
    DEFAULT_ID_FIELD,
    Audience,
    check_id_field,
    make_profile,
)
from airflow_provider_journey.exceptions import AudienceError
from airflow_provider_journey.storage import StoragePath, to_path
from airflow_provider_journey.types import Profile

if TYPE_CHECKING:
    import os

    from airflow.sdk import ObjectStoragePath

FORMATS = ("csv", "jsonl")
_SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class FileAudience(Audience):
    """An audience read from a CSV or JSONL file, one profile per record, streamed.

    CSV values stay strings exactly as written (``"00501"`` keeps its leading zeros); an
    empty cell becomes None. A UTF-8 byte order mark at the start is ignored. In JSONL
    blank lines are skipped, and a line that is not a JSON object yields an invalid
    profile so that the other lines are still read.

    :param path: a local path or a URL such as ``s3://bucket/audience.csv``. (templated)
    :param format: ``"csv"`` or ``"jsonl"``; None infers it from the suffix
        (``.csv``, ``.jsonl``, ``.ndjson``).
    :param id_field: the column or key that contains the profile id.
    :param encoding: the text encoding of the file.
    """

    template_fields: Sequence[str] = ("path",)

    def __init__(
        self,
        path: str | os.PathLike[str] | ObjectStoragePath,
        *,
        format: str | None = None,
        id_field: str = DEFAULT_ID_FIELD,
        encoding: str = "utf-8",
    ) -> None:
        if format is not None and format not in FORMATS:
            raise AudienceError(
                f"audience file format {format!r} is not supported; use one of {FORMATS}"
            )
        self.path = path
        self.format = format
        self.id_field = id_field
        self.encoding = encoding

    def profiles(self) -> Iterator[Profile]:
        """Open the file and yield its profiles in file order."""
        path = to_path(self.path)
        file_format = self.format or _infer_format(path)
        # utf-8-sig drops the byte order mark that spreadsheet exports put first.
        encoding = self.encoding
        if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
            encoding = "utf-8-sig"
        try:
            stream = path.open("r", encoding=encoding, newline="")
        except FileNotFoundError as error:
            raise AudienceError(
                f"audience file {path} not found; check the path or the upstream task "
                f"that writes it"
            ) from error

        with stream:
            try:
                if file_format == "csv":
                    yield from self._read_csv(stream, path)
                else:
                    yield from self._read_jsonl(stream, path)
            except UnicodeDecodeError as error:
                raise AudienceError(
                    f"audience file {path} is not valid {self.encoding} text "
                    f"({error.reason}); set encoding to the file's encoding"
                ) from error

    def _read_csv(self, stream: IO[str], path: StoragePath) -> Iterator[Profile]:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            return
        where = f"file {path}"
        _check_header(header, where=where)
        check_id_field(header, id_field=self.id_field, where=f"audience {where}")

        row = 0
        try:
            for values in reader:
                if not values:
                    continue
                row += 1
                if len(values) > len(header):
                    yield Profile(
                        id=None,
                        attributes={},
                        row=row,
                        error=(
                            f"row {row} of {where} (line {reader.line_num}) has {len(values)} "
                            f"fields but the header has {len(header)}; quote values that "
                            f"contain commas"
                        ),
                    )
                    continue
                # A short row leaves its missing columns at None.
                record: dict[str, Any] = dict.fromkeys(header)
                for name, value in zip(header, values, strict=False):
                    record[name] = value if value != "" else None
                yield make_profile(record, id_field=self.id_field, row=row, where=where)
        except csv.Error as error:
            raise AudienceError(
                f"audience {where} is not valid CSV at line {reader.line_num}: {error}"
            ) from error

    def _read_jsonl(self, stream: IO[str], path: StoragePath) -> Iterator[Profile]:
        where = f"file {path}"
        row = 0
        for line_number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            row += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                problem = f"is not valid JSON ({error.msg} at column {error.colno})"
                yield _invalid_line(row, line_number, where, problem)
                continue
            if not isinstance(record, dict):
                kind = type(record).__name__
                yield _invalid_line(row, line_number, where, f"is a JSON {kind}, not an object")
                continue
            yield make_profile(record, id_field=self.id_field, row=row, where=where)


def _infer_format(path: StoragePath) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise AudienceError(
            f"cannot tell the format of audience file {path} from its suffix {suffix!r}; "
            f"pass format='csv' or format='jsonl'"
        )
    return _SUFFIX_FORMATS[suffix]


def _check_header(header: Sequence[str], *, where: str) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise AudienceError(
                f"the header of {where} has the column {name!r} twice; rename one of them"
            )
        seen.add(name)


def _invalid_line(row: int, line_number: int, where: str, problem: str) -> Profile:
    return Profile(
        id=None,
        attributes={},
        row=row,
        error=f"row {row} of {where} (line {line_number}) {problem}; fix or remove the line",
    )
