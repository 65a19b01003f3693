"""Plain data types shared by the audience readers, the renderer, the engine and the outcome store.

Nothing here imports Airflow, so the engine can be tested and benchmarked on its own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Profile:
    """One record of an audience.

    ``id`` is None when the record has no value in the audience's id field; such a
    profile becomes an ``invalid`` outcome and the others go on. ``row`` is the
    1-based position in the audience, used in error messages. ``actions`` holds, per
    earlier action name, the fields of that action's outcome (status, status code and
    kept response fields) when the audience is the outcomes of an earlier run.
    ``error`` says why the record cannot be used (no id, a line that is not valid
    JSON); the audience readers set it on every profile whose ``id`` is None.
    """

    id: str | None
    attributes: Mapping[str, Any]
    row: int
    actions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    error: str | None = None


class OutcomeStatus(str, enum.Enum):
    """Final status of one profile in one action run."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CAPPED = "capped"
    INVALID = "invalid"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A fully rendered request for one profile, ready to send.

    ``path`` is relative to the endpoint's base URL and already checked to stay on its
    host. Header names and values are already checked against RFC 7230. ``body`` is
    the JSON-encoded payload (None for GET and DELETE without a payload).
    """

    profile_id: str
    method: str
    path: str
    headers: Mapping[str, str]
    query: tuple[tuple[str, str], ...]
    body: bytes | None
    idempotency_key: str


@dataclass(slots=True)
class Outcome:
    """What happened to one profile in one action run; one per profile per run.

    ``status_code`` follows Adobe Journey Optimizer's ``jo_status_code``: ``http_<code>``,
    ``timedout``, ``capped`` or ``internalError``; None for ``invalid`` and ``skipped``.
    ``response`` holds only the fields the action declares to keep. ``error`` is a
    secret-free message, cut to a size limit.
    """

    profile_id: str | None
    action: str
    status: OutcomeStatus
    status_code: str | None = None
    http_status: int | None = None
    attempts: int = 0
    latency_ms: float | None = None
    response: dict[str, Any] | None = None
    error: str | None = None
    idempotency_key: str | None = None
    row: int | None = None
    profile: Mapping[str, Any] | None = None
    finished_at: str | None = None

    def to_record(self) -> dict[str, Any]:
        """Return the outcome as a JSON-ready dict, the line format of the results file."""
        return {
            "profile_id": self.profile_id,
            "action": self.action,
            "status": self.status.value,
            "status_code": self.status_code,
            "http_status": self.http_status,
            "attempts": self.attempts,
            "latency_ms": self.latency_ms,
            "response": self.response,
            "error": self.error,
            "idempotency_key": self.idempotency_key,
            "row": self.row,
            "profile": dict(self.profile) if self.profile is not None else None,
            "finished_at": self.finished_at,
        }
