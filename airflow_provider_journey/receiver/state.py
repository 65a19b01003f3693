"""The receiver's configuration, request records and counters, without any HTTP code.

``ReceiverState.process`` takes one request and returns what to send back and how long
to wait first, and records the request. A lock guards every change, because the
``Receiver`` class reads records from other threads while its event loop serves requests.
"""

from __future__ import annotations

import collections
import fnmatch
import http
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from airflow_provider_journey.receiver.rules import (
    ResponseRule,
    RuleError,
    draw,
    parse_delay,
    rule_from_dict,
)
from airflow_provider_journey.receiver.shapes import (
    DEFAULT_SERVICES,
    SERVICE_METHODS,
    SHAPE_CHECKS,
    ShapeError,
    parse_body,
    parse_services,
    success_response,
)

log = logging.getLogger("airflow_provider_journey.receiver")

RECORDED_HEADERS = ("Idempotency-Key", "Content-Type", "User-Agent")
# Headers that carry credentials: only their names are recorded, never their values.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
# Query parameters whose values are replaced before recording, because an endpoint
# connection may place an API key or token in the query string.
CREDENTIAL_QUERY_NAMES = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "secret", "password", "signature", "sig"}
)
REDACTED = "[redacted]"
DEFAULT_MAX_RECORDS = 100_000
# Rejections logged one by one before the log switches to one line per 1,000.
REJECTIONS_LOGGED_IN_FULL = 20
CONFIG_FIELDS = ("delay_ms", "rules", "seed", "services", "require_idempotency_key")
REQUEST_ID_NAMESPACE = uuid.UUID("7d1b2c8e-3f4a-4b5c-9d6e-0f1a2b3c4d5e")


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """Run-time behaviour: delay range in milliseconds, response rules, seed and services."""

    delay_ms: tuple[float, float] = (0.0, 0.0)
    rules: tuple[ResponseRule, ...] = ()
    seed: int = 0
    services: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SERVICES))
    require_idempotency_key: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration in the JSON form that ``/_receiver/config`` accepts."""
        return {
            "delay_ms": list(self.delay_ms),
            "rules": [rule.to_dict() for rule in self.rules],
            "seed": self.seed,
            "services": dict(self.services),
            "require_idempotency_key": self.require_idempotency_key,
        }


@dataclass(frozen=True, slots=True)
class PlannedResponse:
    """The response chosen for one request: status, JSON body, extra headers, delay in seconds."""

    status: int
    body: Any
    headers: Mapping[str, str]
    delay_seconds: float
    text_body: str | None = None
    drop: bool = False


def random_seed() -> int:
    """Return a seed for runs that do not set one; it is logged so the run can be repeated."""
    return random.SystemRandom().randrange(1_000_000)


class ReceiverState:
    """Configuration, request records and counters of one receiver."""

    def __init__(
        self,
        config: ReceiverConfig | None = None,
        *,
        record_path: str | Path | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        if max_records < 1:
            raise ValueError(f"Invalid max_records {max_records}: give 1 or more.")
        self._config = config if config is not None else ReceiverConfig(seed=random_seed())
        self._lock = threading.Lock()
        self._records: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_records)
        self._record_path = Path(record_path) if record_path is not None else None
        self._record_file: TextIO | None = None
        self._reset_counters()

    @property
    def config(self) -> ReceiverConfig:
        """The configuration in use."""
        with self._lock:
            return self._config

    @property
    def record_path(self) -> Path | None:
        """The JSON Lines file that records requests, or None when records stay in memory."""
        return self._record_path

    def open_record_file(self) -> None:
        """Open the record file for appending, creating its folder if needed."""
        if self._record_path is None or self._record_file is not None:
            return
        self._record_path.parent.mkdir(parents=True, exist_ok=True)
        self._record_file = self._record_path.open("a", encoding="utf-8")

    def close_record_file(self) -> None:
        """Flush and close the record file."""
        with self._lock:
            if self._record_file is not None:
                self._record_file.close()
                self._record_file = None

    def _reset_counters(self) -> None:
        self._sequence = 0
        self._attempts: dict[str, int] = {}
        self._rule_matches: dict[int, int] = {}
        self._by_path: dict[str, collections.Counter[int]] = {}
        self._valid = 0
        self._rejected = 0

    def reset(self) -> None:
        """Clear records and counters; the configuration and the record file stay."""
        with self._lock:
            self._records.clear()
            self._reset_counters()
        log.info("Receiver records and counters cleared.")

    def update_config(self, changes: Mapping[str, Any]) -> ReceiverConfig:
        """Apply the fields given in ``changes`` (the JSON form) and return the new config.

        Raises RuleError naming the invalid field. ``rules`` and ``services`` replace the
        current lists as a whole.
        """
        unknown = sorted(set(changes) - set(CONFIG_FIELDS))
        if unknown:
            raise RuleError(
                f"Unknown config field(s) {', '.join(unknown)}; "
                f"allowed fields are {', '.join(CONFIG_FIELDS)}.",
                unknown[0],
            )

        updates: dict[str, Any] = {}
        if "delay_ms" in changes:
            updates["delay_ms"] = parse_delay(changes["delay_ms"])
        if "rules" in changes:
            updates["rules"] = _parse_rules(changes["rules"])
        if "seed" in changes:
            updates["seed"] = _parse_seed(changes["seed"])
        if "services" in changes:
            updates["services"] = _parse_services_field(changes["services"])
        if "require_idempotency_key" in changes:
            value = changes["require_idempotency_key"]
            if not isinstance(value, bool):
                raise RuleError(
                    f"Invalid require_idempotency_key {value!r}: give true or false.",
                    "require_idempotency_key",
                )
            updates["require_idempotency_key"] = value

        with self._lock:
            self._config = replace(self._config, **updates)
            config = self._config
        log.info("Receiver config changed: %s", ", ".join(sorted(updates)) or "nothing")
        return config

    def records(self, path: str | None = None) -> list[dict[str, Any]]:
        """Return copies of the kept records, oldest first, optionally for one path only."""
        with self._lock:
            selected = [
                record for record in self._records if path is None or record["path"] == path
            ]
        return [dict(record) for record in selected]

    def stats(self) -> dict[str, Any]:
        """Return counts per path and status, valid and rejected counts, distinct keys."""
        with self._lock:
            by_path = {
                path: {str(status): count for status, count in sorted(counter.items())}
                for path, counter in sorted(self._by_path.items())
            }
            by_status: collections.Counter[int] = collections.Counter()
            for counter in self._by_path.values():
                by_status.update(counter)
            return {
                "total": self._sequence,
                "valid": self._valid,
                "rejected": self._rejected,
                "by_path": by_path,
                "by_status": {str(status): count for status, count in sorted(by_status.items())},
                "distinct_idempotency_keys": len(self._attempts),
                "kept_records": len(self._records),
            }

    def process(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        raw_body: bytes,
    ) -> PlannedResponse:
        """Check one request, pick its response, record it and return the response.

        ``headers`` must look names up case-insensitively, as aiohttp's headers do.
        """
        received_at = time.time()
        key = headers.get("Idempotency-Key") or None
        with self._lock:
            config = self._config
            self._sequence += 1
            sequence = self._sequence
            attempt = 1
            if key is not None:
                attempt = self._attempts.get(key, 0) + 1
                self._attempts[key] = attempt

        kind = _service_kind(config.services, path)
        parsed_body, problem = _check_request(config, kind, method, headers, raw_body, key)
        identity = key if key is not None else f"#{sequence}"

        rule_index: int | None = None
        if problem is not None:
            response = _rejection_response(problem, kind)
        else:
            rule_index = self._choose_rule(config, method, path, parsed_body, identity, attempt)
            if rule_index is None:
                status, body = success_response(kind, _request_id(path, key))
                response = PlannedResponse(status, body, {}, 0.0)
            else:
                rule = config.rules[rule_index]
                response = _rule_response(rule)
                if 200 <= rule.status < 300 and rule.body is None and rule.text_body is None:
                    # A slow or otherwise special success still carries the service's body.
                    _, body = success_response(kind, _request_id(path, key))
                    response = replace(response, body=body)

        if rule_index is not None and config.rules[rule_index].delay_ms is not None:
            delay_seconds = _pick_rule_delay(config, rule_index, identity, attempt)
        else:
            delay_seconds = _pick_delay(config, identity, attempt)
        response = replace(response, delay_seconds=delay_seconds)

        record = {
            "received_at": received_at,
            "sequence": sequence,
            "method": method,
            "path": path,
            "query": _redact_query(query),
            "headers": {name: headers[name] for name in RECORDED_HEADERS if name in headers},
            "authorization_present": "Authorization" in headers,
            "credential_headers": sorted(
                name for name in headers if name.lower() in CREDENTIAL_HEADERS
            ),
            "body": parsed_body,
            "body_bytes": len(raw_body),
            "service": kind,
            "attempt": attempt,
            "status": response.status,
            "dropped": response.drop,
            "valid": problem is None,
            "error": problem.message if problem is not None else None,
            "field": problem.field if problem is not None else None,
            "rule": rule_index,
            "delay_ms": round(delay_seconds * 1000, 3),
        }
        self._store(record, problem)
        return response

    def _choose_rule(
        self,
        config: ReceiverConfig,
        method: str,
        path: str,
        body: Any,
        identity: str,
        attempt: int,
    ) -> int | None:
        for index, rule in enumerate(config.rules):
            if not rule.matches_request(method, path, body):
                continue
            if rule.first is not None and attempt > rule.first:
                continue
            if rule.every is not None:
                with self._lock:
                    count = self._rule_matches.get(index, 0) + 1
                    self._rule_matches[index] = count
                if count % rule.every != 0:
                    continue
            if (
                rule.rate is not None
                and draw(config.seed, "rule", index, identity, attempt) >= rule.rate
            ):
                continue
            return index
        return None

    def _store(self, record: dict[str, Any], problem: ShapeError | None) -> None:
        with self._lock:
            self._records.append(record)
            counter = self._by_path.setdefault(record["path"], collections.Counter())
            counter[record["status"]] += 1
            if problem is None:
                self._valid += 1
            else:
                self._rejected += 1
            rejected = self._rejected
            if self._record_file is not None:
                self._record_file.write(json.dumps(record, ensure_ascii=False) + "\n")
                self._record_file.flush()

        if problem is not None:
            _log_rejection(record, rejected)


def _service_kind(services: Mapping[str, str], path: str) -> str:
    kind = services.get(path)
    if kind is not None:
        return kind
    for pattern, pattern_kind in services.items():
        if fnmatch.fnmatchcase(path, pattern):
            return pattern_kind
    return "any"


def _check_request(
    config: ReceiverConfig,
    kind: str,
    method: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    key: str | None,
) -> tuple[Any, ShapeError | None]:
    allowed_methods = SERVICE_METHODS.get(kind)
    if allowed_methods is not None and method not in allowed_methods:
        allowed = ", ".join(sorted(allowed_methods))
        message = f"Method {method} not allowed on this {kind} service; use {allowed}."
        return None, ShapeError(message, "method", status=405)

    if key is None and config.require_idempotency_key:
        return None, ShapeError("Missing Idempotency-Key header.", "Idempotency-Key")

    parsed = parse_body(method, headers.get("Content-Type", ""), raw_body)
    if parsed.error is not None:
        return parsed.value, parsed.error
    if parsed.value is None:
        return None, None
    return parsed.value, SHAPE_CHECKS[kind](parsed.value)


def _rejection_response(problem: ShapeError, kind: str) -> PlannedResponse:
    headers: dict[str, str] = {}
    if problem.status == 405:
        headers["Allow"] = ", ".join(sorted(SERVICE_METHODS.get(kind, ())))
    return PlannedResponse(
        problem.status, {"error": problem.message, "field": problem.field}, headers, 0.0
    )


def _rule_response(rule: ResponseRule) -> PlannedResponse:
    headers: dict[str, str] = {}
    retry_after = rule.retry_after_header()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = rule.body
    if body is None:
        body = {"error": _reason_phrase(rule.status), "status": rule.status}
    return PlannedResponse(
        rule.status, body, headers, 0.0, text_body=rule.text_body, drop=rule.drop
    )


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _request_id(path: str, key: str | None) -> str:
    # The same key on the same path gets the same id, as idempotent services do.
    if key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{path}|{key}"))


def _pick_delay(config: ReceiverConfig, identity: str, attempt: int) -> float:
    low, high = config.delay_ms
    if high <= 0:
        return 0.0
    fraction = draw(config.seed, "delay", identity, attempt)
    return (low + (high - low) * fraction) / 1000


def _pick_rule_delay(config: ReceiverConfig, index: int, identity: str, attempt: int) -> float:
    delay_ms = config.rules[index].delay_ms
    if delay_ms is None:
        return 0.0
    low, high = delay_ms
    fraction = draw(config.seed, "rule-delay", index, identity, attempt)
    return (low + (high - low) * fraction) / 1000


def _redact_query(query: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in query:
        recorded_value = REDACTED if name.lower() in CREDENTIAL_QUERY_NAMES else value
        result.setdefault(name, []).append(recorded_value)
    return result


def _log_rejection(record: Mapping[str, Any], rejected: int) -> None:
    if rejected <= REJECTIONS_LOGGED_IN_FULL:
        log.warning(
            "Rejected %s %s with %s (key %s): %s",
            record["method"],
            record["path"],
            record["status"],
            record["headers"].get("Idempotency-Key"),
            record["error"],
        )
    elif rejected % 1000 == 0:
        log.warning("Rejected %d requests so far; see /_receiver/requests for each.", rejected)


def _parse_rules(value: Any) -> tuple[ResponseRule, ...]:
    if not isinstance(value, list):
        raise RuleError("Invalid rules: give a JSON array of rule objects.", "rules")
    return tuple(rule_from_dict(item, position) for position, item in enumerate(value))


def _parse_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(f"Invalid seed {value!r}: give a whole number.", "seed")
    return value


def _parse_services_field(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RuleError("Invalid services: give an object of path to kind.", "services")
    try:
        return parse_services(value)
    except ValueError as error:
        raise RuleError(str(error), "services") from error
