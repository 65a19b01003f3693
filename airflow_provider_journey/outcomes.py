"""The outcome store: one JSONL results directory per action run, one part file per task try.

Layout of a results directory (the caller chooses the directory, for example
``<base>/<dag_id>/<run_id>/<task_id>[/map-<index>]/<action>/``)::

    part-001.jsonl      outcomes written by try 1
    part-002.jsonl      outcomes written by try 2 (a retry)

Object stores cannot append, so each try writes a file of its own and never rewrites
an earlier try's part. Each line is one ``Outcome.to_record()`` as compact JSON.

Resume: a retried task skips every profile that already has a final outcome in an
earlier part. Final means any status except ``skipped``, so a retry does not send
``failed``, ``timed_out``, ``capped`` or ``invalid`` profiles again. The retry finishes
the profiles the earlier try did not reach. The failed ones go to the error path (an
``OutcomesAudience`` over this directory) instead of being sent again blindly.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from json.encoder import encode_basestring
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeGuard

from airflow_provider_journey.storage import StoragePath, to_path
from airflow_provider_journey.types import Outcome, OutcomeStatus

if TYPE_CHECKING:
    import os

    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

PART_NAME = re.compile(r"^part-(?P<try>\d+)(?:-(?P<seq>\d+))?\.jsonl$")
_SKIPPED = OutcomeStatus.SKIPPED.value

# A record position packed into one int: part index in the high bits, byte offset in the low.
_OFFSET_BITS = 48


def _json_default(value: Any) -> Any:
    """Encode the SQL and Python values that ``json`` cannot, keeping them exact."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable")


# One encoder for every line: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def encode_record(record: dict[str, Any]) -> bytes:
    """Encode one outcome record as a compact UTF-8 JSON line ending in a newline."""
    return (_ENCODER.encode(record) + "\n").encode("utf-8")


class _RecordEncoder:
    """Encoder of outcome lines for one writer, giving the same bytes as ``encode_record``.

    ``JSONEncoder.encode`` builds a new C encoder for every call. This class builds
    one and keeps it, which took a benchmark outcome line from about 4.9 to 4.1 µs.
    The C encoder keeps the ids of the containers it is inside of, to detect a
    circular reference, and an error leaves them there, so they are cleared before
    the error is raised on. Without the json module's C accelerator,
    ``encode_record`` does the work.

    Not thread-safe: the writer calls it under its lock.
    """

    def __init__(self) -> None:
        self._markers: dict[int, Any] = {}
        self._encode: Any = None
        make_encoder = getattr(json.encoder, "c_make_encoder", None)
        if make_encoder is not None:
            self._encode = make_encoder(
                self._markers,
                _json_default,
                encode_basestring,
                None,  # no indent
                ":",
                ",",
                False,  # sort_keys
                False,  # skipkeys
                True,  # allow_nan, as the JSONEncoder of encode_record
            )

    def line(self, record: dict[str, Any]) -> bytes:
        """Encode one outcome record as a compact UTF-8 JSON line ending in a newline."""
        if self._encode is None:
            return encode_record(record)
        try:
            chunks = self._encode(record, 0)
        except BaseException:
            self._markers.clear()
            raise
        return ("".join(chunks) + "\n").encode("utf-8")


class OutcomeWriter:
    """Write the outcomes of one task try to a part file of its own.

    Every ``write()`` hands its line to the operating system at once, so a killed
    process loses nothing already written. A local file is written without a buffer,
    so the whole line is in the operating system when ``write()`` returns, and any
    other file is flushed after each line. The data is not fsynced: a power loss of
    the machine can still lose the tail of a local file.

    NOTE: on object stores (``s3://`` and the like) fsspec uploads a file in blocks of
    several MiB and completes it on ``close()``. A killed process loses what it wrote
    since the last block, and resume sends those profiles again with the same
    idempotency keys.

    :param directory: the results directory of the action run; created if missing.
    :param try_number: the task try, used in the part file name.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | ObjectStoragePath, *, try_number: int
    ) -> None:
        if try_number < 0:
            raise ValueError(f"try_number must be 0 or more, got {try_number}")
        self.directory: StoragePath = to_path(directory)
        self.try_number = try_number
        self.path: StoragePath | None = None
        self.count = 0
        self._file: IO[bytes] | None = None
        self._unbuffered = False
        self._encoder = _RecordEncoder()
        self._lock = threading.Lock()

    def open(self) -> OutcomeWriter:
        """Create the directory and a new part file for this try."""
        if self._file is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self._free_part_path()
        if _is_local(self.path):
            self._file = self.path.open("wb", buffering=0)
            self._unbuffered = True
        else:
            self._file = self.path.open("wb")
        log.info("Writing outcomes to %s", self.path)
        return self

    def _free_part_path(self) -> StoragePath:
        # A part for this try number exists only when the same try runs twice (for
        # example a task started again by hand); never overwrite it.
        path = self.directory / f"part-{self.try_number:03d}.jsonl"
        sequence = 0
        while path.exists():
            sequence += 1
            path = self.directory / f"part-{self.try_number:03d}-{sequence}.jsonl"
        return path

    def write(self, outcome: Outcome) -> None:
        """Append one outcome as a JSON line and hand it to the operating system."""
        record = outcome.to_record()
        with self._lock:
            if self._file is None:
                raise RuntimeError("OutcomeWriter is not open; use it as a context manager")
            line = self._encoder.line(record)
            if self._unbuffered:
                _write_all(self._file, line)
            else:
                self._file.write(line)
                self._file.flush()
            self.count += 1

    def close(self) -> None:
        """Close the part file; a second call does nothing."""
        with self._lock:
            if self._file is None:
                return
            self._file.close()
            self._file = None
        log.info("Wrote %d outcome(s) to %s", self.count, self.path)

    def __enter__(self) -> OutcomeWriter:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _is_local(path: StoragePath) -> TypeGuard[Path]:
    return isinstance(path, Path)


def _write_all(file: IO[bytes], data: bytes) -> None:
    """Write every byte of ``data`` to an unbuffered file, which may write only a part per call."""
    written = file.write(data)
    while written < len(data):
        written += file.write(memoryview(data)[written:])


def list_parts(directory: str | os.PathLike[str] | ObjectStoragePath) -> list[StoragePath]:
    """Return the part files of a results directory in write order; empty if it is missing."""
    path = to_path(directory)
    if not path.exists():
        return []

    keyed: list[tuple[int, int, str, StoragePath]] = []
    for child in path.iterdir():
        match = PART_NAME.match(child.name)
        if match is None:
            continue
        sequence = int(match.group("seq") or 0)
        keyed.append((int(match.group("try")), sequence, child.name, child))
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]


def _iter_part(part: StoragePath, *, warn: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (byte offset, record) for each readable line of one part file.

    A line that is not a JSON object is skipped. That is expected for the last line
    of a part whose writer was killed mid-line; anywhere else it means the file was
    damaged. Either way the other lines are still read.
    """
    offset = 0
    skipped: list[int] = []
    with part.open("rb") as stream:
        for line_number, line in enumerate(stream, start=1):
            position = offset
            offset += len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                skipped.append(line_number)
                continue
            yield position, record

    if skipped and warn:
        log.warning(
            "Skipped %d unreadable line(s) in %s (line numbers %s); a half-written last "
            "line comes from a task that was killed while writing, and its profile is "
            "sent again on resume",
            len(skipped),
            part,
            ", ".join(str(number) for number in skipped[:10]),
        )


def read_outcome_records(
    directory: str | os.PathLike[str] | ObjectStoragePath,
) -> Iterator[dict[str, Any]]:
    """Yield every outcome record of a results directory, part by part, in write order."""
    for part in list_parts(directory):
        for _offset, record in _iter_part(part):
            yield record


def final_profile_ids(directory: str | os.PathLike[str] | ObjectStoragePath) -> set[str]:
    """Return the profile ids that already have a final outcome (any status but ``skipped``)."""
    done: set[str] = set()
    for record in read_outcome_records(directory):
        profile_id = record.get("profile_id")
        if profile_id is not None and record.get("status") != _SKIPPED:
            done.add(str(profile_id))
    return done


def _record_key(record: dict[str, Any]) -> str | tuple[str, Any]:
    # A record without a profile id is identified by its audience row, which is the
    # same in every try as long as the audience source does not change.
    profile_id = record.get("profile_id")
    if profile_id is None:
        return ("row", record.get("row"))
    return str(profile_id)


def latest_outcomes(
    directory: str | os.PathLike[str] | ObjectStoragePath,
) -> Iterator[dict[str, Any]]:
    """Yield one record per profile: its last final outcome across all parts.

    A ``skipped`` record (written by a retry for a profile done earlier) counts only
    when the profile has no other record. Records come out in write order.

    NOTE: with more than one part this keeps a dict of profile id to record position
    in memory, roughly 100-150 bytes per profile (an estimate). With a single part no
    index is kept, because a try writes one outcome per profile.
    """
    parts = list_parts(directory)
    if len(parts) == 1:
        yield from (record for _offset, record in _iter_part(parts[0]))
        return

    # Each winner is stored as one int: the record position, shifted left by one bit,
    # with the low bit set when the record is a skipped one.
    winners: dict[str | tuple[str, Any], int] = {}
    for index, part in enumerate(parts):
        for offset, record in _iter_part(part):
            key = _record_key(record)
            is_skipped = record.get("status") == _SKIPPED
            current = winners.get(key)
            if is_skipped and current is not None and not current & 1:
                continue
            winners[key] = (_pack_position(index, offset) << 1) | int(is_skipped)

    for index, part in enumerate(parts):
        for offset, record in _iter_part(part, warn=False):
            if winners.get(_record_key(record), -1) >> 1 == _pack_position(index, offset):
                yield record


def _pack_position(part_index: int, offset: int) -> int:
    return (part_index << _OFFSET_BITS) | offset
