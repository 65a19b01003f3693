"""Reading a response body within a size limit and keeping the declared fields of it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from airflow_provider_journey.engine.auth import redact

ERROR_BODY_CHARS = 500

_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A declared response field such as ``data.items.0.id``, split once into its parts.

    Each part is an object key; a part made of digits also carries its array index.
    """

    text: str
    parts: tuple[tuple[str, int | None], ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        parts = tuple((part, int(part) if part.isdigit() else None) for part in text.split("."))
        return cls(text, parts)

    def lookup(self, document: Any) -> Any:
        """Return the value at this path in a parsed JSON document, or ``_MISSING``."""
        current = document
        for key, index in self.parts:
            if isinstance(current, Mapping):
                current = current.get(key, _MISSING)
            elif isinstance(current, list) and index is not None and index < len(current):
                current = current[index]
            else:
                return _MISSING
            if current is _MISSING:
                return _MISSING
        return current


def compile_paths(paths: Iterable[str]) -> tuple[FieldPath, ...]:
    """Parse declared field paths once, so sending does no string splitting per call."""
    return tuple(FieldPath.parse(path) for path in paths)


def keep_fields(document: Any, paths: tuple[FieldPath, ...]) -> dict[str, Any]:
    """Return the declared fields found in ``document``, keyed by their declared path.

    A path that is not in the document is left out, so a field that is absent can be
    distinguished from a field whose value is null.
    """
    found: dict[str, Any] = {}
    for path in paths:
        value = path.lookup(document)
        if value is not _MISSING:
            found[path.text] = value
    return found


def parse_json(body: bytes) -> tuple[bool, Any]:
    """Return ``(True, document)`` for a JSON body and ``(False, None)`` otherwise."""
    try:
        return True, json.loads(body)
    except ValueError:
        return False, None


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """Return the response body, or None when it is longer than ``limit`` bytes.

    At most ``limit + 1`` bytes are read, so an oversized body never fills memory.
    """
    length = response.content_length
    if length is not None:
        if length > limit:
            return None
        return await response.read()

    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        return None
    return b"".join(chunks)


def error_body_excerpt(body: bytes, secrets: tuple[str, ...]) -> str:
    """Return about the first 500 characters of an error body, with every secret replaced.

    When a secret straddles the 500th character, the cut moves to the end of that secret,
    so no readable part of it is left behind.
    """
    if not body:
        return "(empty body)"
    margin = max((len(secret) for secret in secrets), default=0)
    text = body[: (ERROR_BODY_CHARS + 2 * margin) * 4].decode("utf-8", errors="replace")

    cut = ERROR_BODY_CHARS
    moved = True
    while moved and cut < len(text):
        moved = False
        for secret in secrets:
            start = text.find(secret, max(cut - len(secret) + 1, 0), cut + len(secret) - 1)
            if start != -1:
                cut = start + len(secret)
                moved = True

    excerpt = redact(text[:cut], secrets)
    return excerpt + "..." if cut < len(text) else excerpt
