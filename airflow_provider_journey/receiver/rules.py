"""Response rules and delays of the receiver: which requests get an error status, and when.

Rules are tried in order and the first rule whose conditions all hold sets the response.
Random choices (``rate`` and delay ranges) are drawn from a hash of the seed, the rule,
the ``Idempotency-Key`` and the attempt number for that key, so the same requests get
the same responses in every run with the same seed, whatever order concurrent requests
arrive in. Requests without an ``Idempotency-Key`` use their arrival number instead.
"""

from __future__ import annotations

import email.utils
import fnmatch
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

RULE_FIELDS = (
    "status",
    "path",
    "method",
    "rate",
    "every",
    "first",
    "when_body",
    "retry_after",
    "retry_after_format",
    "body",
    "text_body",
    "delay_ms",
    "drop",
)
# The status recorded for a dropped connection, which has no HTTP status.
DROPPED_STATUS = 0
RETRY_AFTER_FORMATS = ("seconds", "http-date")


class RuleError(ValueError):
    """A rule or delay setting is invalid; ``field`` names the setting."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class ResponseRule:
    """A condition under which the receiver responds with ``status`` instead of success.

    ``path`` is a shell-style pattern (``/push``, ``/v1/*``) and ``method`` an HTTP
    method; None matches any. ``rate`` is the probability (0 to 1) that a matching
    request gets the status, ``every`` makes every N-th matching request get it, and
    ``first`` makes the first N attempts of each ``Idempotency-Key`` get it.
    ``when_body`` matches top-level body fields by equality, or by prefix when the
    expected value is a string ending in ``*``. ``retry_after`` is sent as the
    ``Retry-After`` header: a number of seconds, sent as seconds or, with
    ``retry_after_format="http-date"``, as the HTTP date that many seconds ahead. A
    string that is not a number is sent unchanged. ``body`` replaces the default JSON
    error body, and ``text_body`` sends that text as ``text/html`` instead of JSON.
    ``delay_ms`` (milliseconds, a pair for a range) delays this rule's responses in
    place of the receiver-wide delay, for answers slower than a client's timeout.
    ``drop`` closes the connection without any response; such a rule needs no status
    and its requests are recorded with status 0.
    """

    status: int
    path: str | None = None
    method: str | None = None
    rate: float | None = None
    every: int | None = None
    first: int | None = None
    when_body: Mapping[str, Any] | None = None
    retry_after: str | None = None
    retry_after_format: str = "seconds"
    body: Any = None
    text_body: str | None = None
    delay_ms: tuple[float, float] | None = None
    drop: bool = False

    def matches_request(self, method: str, path: str, body: Any) -> bool:
        """Return whether path, method and ``when_body`` match; counters are not checked."""
        if self.path is not None and not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.method is not None and self.method != method:
            return False
        if self.when_body is None:
            return True
        if not isinstance(body, dict):
            return False
        return all(
            _field_matches(body.get(key), expected) for key, expected in self.when_body.items()
        )

    def retry_after_header(self, now: float | None = None) -> str | None:
        """Return the ``Retry-After`` header value, or None when the rule sets none."""
        if self.retry_after is None:
            return None
        try:
            seconds = float(self.retry_after)
        except ValueError:
            return self.retry_after
        if self.retry_after_format == "http-date":
            moment = (time.time() if now is None else now) + seconds
            return email.utils.formatdate(moment, usegmt=True)
        return str(int(seconds)) if seconds.is_integer() else str(seconds)

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a JSON-ready dict without unset fields."""
        data = asdict(self)
        if data["when_body"] is not None:
            data["when_body"] = dict(data["when_body"])
        if data["retry_after_format"] == "seconds":
            del data["retry_after_format"]
        if data["delay_ms"] is not None:
            data["delay_ms"] = list(data["delay_ms"])
        if not data["drop"]:
            del data["drop"]
        return {key: value for key, value in data.items() if value is not None}


def _field_matches(actual: Any, expected: Any) -> bool:
    if isinstance(expected, str) and expected.endswith("*"):
        return isinstance(actual, str) and actual.startswith(expected[:-1])
    return bool(actual == expected)


def rule_from_dict(data: Mapping[str, Any], position: int = 0) -> ResponseRule:
    """Build a rule from its JSON form, raising RuleError that names the invalid field."""
    prefix = f"rules[{position}]"
    if not isinstance(data, Mapping):
        raise RuleError(f"Invalid rule at {prefix}: expected a JSON object.", prefix)
    unknown = sorted(set(data) - set(RULE_FIELDS))
    if unknown:
        raise RuleError(
            f"Unknown field(s) {', '.join(unknown)} in {prefix}; "
            f"allowed fields are {', '.join(RULE_FIELDS)}.",
            f"{prefix}.{unknown[0]}",
        )

    drop = data.get("drop", False)
    if not isinstance(drop, bool):
        raise RuleError(f"Invalid {prefix}.drop {drop!r}: give true or false.", f"{prefix}.drop")
    status = data.get("status", DROPPED_STATUS if drop else None)
    valid_status = drop and status == DROPPED_STATUS
    if not valid_status and (
        isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599
    ):
        raise RuleError(
            f"Invalid {prefix}.status {status!r}: give an HTTP status from 200 to 599.",
            f"{prefix}.status",
        )
    text_body = data.get("text_body")
    if text_body is not None and not isinstance(text_body, str):
        raise RuleError(
            f"Invalid {prefix}.text_body {text_body!r}: give a string.", f"{prefix}.text_body"
        )
    delay_ms = None
    if data.get("delay_ms") is not None:
        try:
            delay_ms = parse_delay(data["delay_ms"])
        except RuleError as error:
            raise RuleError(str(error), f"{prefix}.delay_ms") from error

    return ResponseRule(
        status=status,
        path=_optional_str(data, "path", prefix),
        method=_optional_method(data, prefix),
        rate=_optional_rate(data, prefix),
        every=_optional_count(data, "every", prefix),
        first=_optional_count(data, "first", prefix),
        when_body=_optional_when_body(data, prefix),
        retry_after=_optional_retry_after(data, prefix),
        retry_after_format=_retry_after_format(data, prefix),
        body=data.get("body"),
        text_body=text_body,
        delay_ms=delay_ms,
        drop=drop,
    )


def _optional_str(data: Mapping[str, Any], name: str, prefix: str) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and value):
        return value
    raise RuleError(
        f"Invalid {prefix}.{name} {value!r}: give a non-empty string.", f"{prefix}.{name}"
    )


def _optional_method(data: Mapping[str, Any], prefix: str) -> str | None:
    method = _optional_str(data, "method", prefix)
    return method.upper() if method is not None else None


def _optional_rate(data: Mapping[str, Any], prefix: str) -> float | None:
    rate = data.get("rate")
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise RuleError(
            f"Invalid {prefix}.rate {rate!r}: give a probability from 0 to 1.", f"{prefix}.rate"
        )
    return float(rate)


def _optional_count(data: Mapping[str, Any], name: str, prefix: str) -> int | None:
    count = data.get(name)
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise RuleError(
            f"Invalid {prefix}.{name} {count!r}: give a whole number of 1 or more.",
            f"{prefix}.{name}",
        )
    return count


def _optional_when_body(data: Mapping[str, Any], prefix: str) -> Mapping[str, Any] | None:
    when_body = data.get("when_body")
    if when_body is None or isinstance(when_body, Mapping):
        return when_body
    raise RuleError(
        f"Invalid {prefix}.when_body: give a JSON object of body fields to match.",
        f"{prefix}.when_body",
    )


def _optional_retry_after(data: Mapping[str, Any], prefix: str) -> str | None:
    retry_after = data.get("retry_after")
    if retry_after is None:
        return None
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float | str):
        raise RuleError(
            f"Invalid {prefix}.retry_after {retry_after!r}: give seconds or an HTTP date.",
            f"{prefix}.retry_after",
        )
    return str(retry_after)


def _retry_after_format(data: Mapping[str, Any], prefix: str) -> str:
    value = data.get("retry_after_format", "seconds")
    if value not in RETRY_AFTER_FORMATS:
        raise RuleError(
            f"Invalid {prefix}.retry_after_format {value!r}: use "
            f"{' or '.join(RETRY_AFTER_FORMATS)}.",
            f"{prefix}.retry_after_format",
        )
    return str(value)


def parse_rule(text: str) -> ResponseRule:
    """Parse a rule given on the command line.

    The text is either a JSON object (``{"status": 503, "first": 2}``) or the short form
    ``[PATH:]STATUS[:RATE][:NAME=VALUE...]``: ``/push:503:0.1``, ``500:every=10``,
    ``*:429:rate=0.05:retry_after=2``. NAME is ``rate``, ``every``, ``first``,
    ``method``, ``retry_after``, ``retry_after_format``, ``delay_ms`` or ``text_body``.
    STATUS ``drop`` closes the connection without a response: ``*:drop:0.01``.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            json_rule = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise RuleError(f"Invalid rule {text!r}: not valid JSON ({error}).", "rule") from error
        return rule_from_dict(json_rule)

    parts = stripped.split(":")
    data: dict[str, Any] = {}
    if parts and (parts[0].startswith("/") or parts[0] == "*"):
        path = parts.pop(0)
        if path != "*":
            data["path"] = path
    if parts and parts[0] == "drop":
        parts[0] = str(DROPPED_STATUS)
        data["drop"] = True
    if not parts or not parts[0].isdigit():
        raise RuleError(
            f"Invalid rule {text!r}: expected [PATH:]STATUS[:RATE][:NAME=VALUE...], "
            "for example /push:503:0.1, or a JSON object.",
            "rule",
        )
    data["status"] = int(parts.pop(0))
    for part in parts:
        name, separator, value = part.partition("=")
        if not separator:
            data["rate"] = _parse_number(value or name, text)
        elif name in ("rate", "every", "first"):
            data[name] = _parse_number(value, text)
        elif name in ("method", "retry_after", "retry_after_format", "delay_ms", "text_body"):
            data[name] = value
        else:
            raise RuleError(
                f"Invalid rule {text!r}: unknown option {name!r}; use rate, every, first, "
                "method, retry_after, retry_after_format, delay_ms or text_body.",
                "rule",
            )
    return rule_from_dict(data)


def _parse_number(text: str, rule_text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError as error:
        raise RuleError(f"Invalid rule {rule_text!r}: {text!r} is not a number.", "rule") from error


def parse_delay(value: Any) -> tuple[float, float]:
    """Parse a delay in milliseconds: a number, ``"MIN-MAX"``, ``[MIN, MAX]`` or None for none."""
    if value is None:
        return (0.0, 0.0)
    if isinstance(value, str):
        low_text, separator, high_text = value.partition("-")
        try:
            low = float(low_text)
            high = float(high_text) if separator else low
        except ValueError as error:
            raise RuleError(
                f"Invalid delay {value!r}: give milliseconds (20) or a range (10-50).", "delay_ms"
            ) from error
    elif isinstance(value, list | tuple) and len(value) == 2:
        low, high = (_delay_number(item, value) for item in value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        low = high = float(value)
    else:
        raise RuleError(
            f'Invalid delay {value!r}: give milliseconds (20), a range "10-50" or [10, 50].',
            "delay_ms",
        )
    if low < 0 or high < low:
        raise RuleError(
            f"Invalid delay {value!r}: milliseconds must be 0 or more and MIN <= MAX.", "delay_ms"
        )
    return (low, high)


def _delay_number(item: Any, whole: Any) -> float:
    if isinstance(item, bool) or not isinstance(item, int | float):
        raise RuleError(f"Invalid delay {whole!r}: both ends must be numbers.", "delay_ms")
    return float(item)


def draw(seed: int, *parts: object) -> float:
    """Return a number in [0, 1) that depends only on the seed and ``parts``."""
    text = "|".join(str(part) for part in (seed, *parts))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
