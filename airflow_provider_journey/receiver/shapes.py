"""Shape checks of the requests the receiver accepts, per kind of service.

Each service path has a kind: ``push`` and ``email`` check the fields that push and
email services require, ``any`` accepts any JSON object body. Checks stop at the first
problem and return it with the name of the field, so a test can assert on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_SERVICES: Mapping[str, str] = {"/push": "push", "/email": "email"}


@dataclass(frozen=True, slots=True)
class ShapeError:
    """A reason to reject a request: the message, the field and the status to send."""

    message: str
    field: str
    status: int = 400


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A request body after the checks: the parsed JSON (None when empty) or the problem."""

    value: Any
    error: ShapeError | None


def parse_body(method: str, content_type: str, raw: bytes) -> ParsedBody:
    """Parse a JSON object body; POST, PUT and PATCH need one, other methods may omit it."""
    if not raw:
        if method in BODY_METHODS:
            return ParsedBody(None, ShapeError(f"Missing JSON body on {method}.", "body"))
        return ParsedBody(None, None)

    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        message = f"Invalid Content-Type {content_type!r}: send application/json."
        return ParsedBody(None, ShapeError(message, "Content-Type"))

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"Invalid body: not UTF-8 at byte {error.start}."
        return ParsedBody(None, ShapeError(message, "body"))

    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        message = (
            f"Invalid body: not JSON ({error.msg} at line {error.lineno} column {error.colno})."
        )
        return ParsedBody(None, ShapeError(message, "body"))

    if not isinstance(value, dict):
        message = f"Invalid body: expected a JSON object, got {type(value).__name__}."
        return ParsedBody(value, ShapeError(message, "body"))
    return ParsedBody(value, None)


def check_push(body: Mapping[str, Any]) -> ShapeError | None:
    """Check a push body: a non-empty ``token`` and a ``message`` with ``title`` and ``body``."""
    token = body.get("token")
    if not isinstance(token, str) or not token:
        return ShapeError(
            "Missing or empty token: give the device push token as a string.", "token"
        )

    message = body.get("message")
    if not isinstance(message, dict):
        return ShapeError("Missing message: give an object with title and body.", "message")
    for name in ("title", "body"):
        if not isinstance(message.get(name), str):
            return ShapeError(f"Missing message.{name}: give a string.", f"message.{name}")
    return None


def check_email(body: Mapping[str, Any]) -> ShapeError | None:
    """Check an email body: ``to`` with an ``@``, ``subject``, and a template, html or text."""
    to = body.get("to")
    if not isinstance(to, str) or "@" not in to:
        return ShapeError("Missing or invalid to: give an email address.", "to")

    if not isinstance(body.get("subject"), str):
        return ShapeError("Missing subject: give a string.", "subject")

    template = body.get("template")
    if template is not None and not isinstance(template, str | dict):
        return ShapeError("Invalid template: give a template id or an object.", "template")
    for name in ("html", "text"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            return ShapeError(f"Invalid {name}: give a string.", name)
    if template is None and body.get("html") is None and body.get("text") is None:
        return ShapeError("Missing content: give template, html or text.", "template")
    return None


def check_any(body: Mapping[str, Any]) -> ShapeError | None:
    """Accept any JSON object."""
    return None


SHAPE_CHECKS: Mapping[str, Callable[[Mapping[str, Any]], ShapeError | None]] = {
    "push": check_push,
    "email": check_email,
    "any": check_any,
}

# Methods that the typed services accept; ``any`` accepts every method.
SERVICE_METHODS: Mapping[str, frozenset[str]] = {
    "push": frozenset({"POST"}),
    "email": frozenset({"POST"}),
}


def success_response(kind: str, request_id: str) -> tuple[int, dict[str, Any]]:
    """Return the status and JSON body that a service of ``kind`` sends on success."""
    if kind == "push":
        return 202, {"message_id": request_id, "status": "queued"}
    if kind == "email":
        return 202, {"email_id": request_id, "accepted": True}
    return 200, {"request_id": request_id, "received": True}


def parse_services(entries: Mapping[str, str]) -> dict[str, str]:
    """Validate a mapping of path to service kind, raising ValueError on the first problem."""
    services: dict[str, str] = {}
    for path, kind in entries.items():
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"Invalid service path {path!r}: start it with '/'.")
        if path.startswith("/_receiver"):
            raise ValueError(f"Invalid service path {path!r}: /_receiver is reserved.")
        if kind not in SHAPE_CHECKS:
            raise ValueError(
                f"Invalid kind {kind!r} for service {path}: use {', '.join(SHAPE_CHECKS)}."
            )
        services[path] = kind
    return services
