"""Action definitions: load a custom action from JSON, validate it and describe it as JSON Schema.

An action is a JSON document that defines where and how to call one REST endpoint for a
profile: endpoint connection, method, path, headers, query, payload template, declared
parameters and the response fields to keep. ``parse_action`` checks the whole document and
raises ``ActionDefinitionError`` listing every problem, each with its field path, so an
author fixes a definition in one round. Nothing here imports Airflow.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airflow_provider_journey.exceptions import ActionDefinitionError

METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
METHODS_WITH_BODY = ("POST", "PUT", "PATCH")

SCALAR_TYPES = ("string", "integer", "decimal", "boolean", "dateTime", "date", "object")
LIST_TYPES = (
    "listString",
    "listInteger",
    "listDecimal",
    "listBoolean",
    "listDateTime",
    "listDate",
    "listObject",
    "listAny",
)
PARAMETER_TYPES = SCALAR_TYPES + LIST_TYPES

# Item type of each list type; listAny has none.
LIST_ITEM_TYPES: dict[str, str | None] = {
    "listString": "string",
    "listInteger": "integer",
    "listDecimal": "decimal",
    "listBoolean": "boolean",
    "listDateTime": "dateTime",
    "listDate": "date",
    "listObject": "object",
    "listAny": None,
}

MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 300
MAX_RETRIES = 10

# The provider sets these headers itself; an action that sets them would break the
# idempotency contract or the framing of the request.
RESERVED_HEADERS = ("idempotency-key", "content-length", "transfer-encoding", "host")

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# RFC 7230 section 3.2.6: token = 1*tchar.
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
KEEP_PATH_PATTERN = r"^[^.\s]+(\.[^.\s]+)*$"
SCHEME_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:"

# Words that Jinja reads as literals or operators, so a parameter with that name could
# never be referenced in a template.
JINJA_LITERALS = ("true", "false", "none", "True", "False", "None")
JINJA_OPERATORS = ("and", "or", "not", "in", "is", "if", "else")
JINJA_SPECIAL_NAMES = ("loop", "self", "caller", "varargs", "kwargs")
JINJA_RESERVED_NAMES = frozenset(JINJA_LITERALS + JINJA_OPERATORS + JINJA_SPECIAL_NAMES)

TOP_LEVEL_KEYS = (
    "name",
    "description",
    "connection_id",
    "method",
    "path",
    "headers",
    "query",
    "parameters",
    "payload",
    "response",
    "error_response",
    "timeout_seconds",
    "max_retries",
    "drop_nulls_in_lists",
    "max_response_bytes",
)
PARAMETER_KEYS = ("type", "required", "default", "nullable", "description")
RESPONSE_KEYS = ("keep",)

_NAME_RE = re.compile(NAME_PATTERN)
_HEADER_NAME_RE = re.compile(HEADER_NAME_PATTERN)
_KEEP_PATH_RE = re.compile(KEEP_PATH_PATTERN)
_SCHEME_RE = re.compile(SCHEME_PATTERN)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Control characters that must not appear in a header value (tab is allowed).
HEADER_VALUE_FORBIDDEN_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ParameterSpec:
    """A declared parameter of an action: its type and how a missing or null value is handled.

    ``has_default`` distinguishes a default of ``None`` (null) from no default at all.
    """

    name: str
    type: str
    required: bool = True
    default: Any = None
    has_default: bool = False
    nullable: bool = False
    description: str | None = None

    @property
    def item_type(self) -> str | None:
        """Item type of a list type (None for listAny and for scalar types)."""
        return LIST_ITEM_TYPES.get(self.type)


@dataclass(frozen=True)
class ActionDefinition:
    """A validated custom action.

    ``payload`` is None when the action sends no body. ``headers``, ``query`` and the string
    leaves of ``payload`` are template sources; the renderer compiles them once per action.
    """

    name: str
    connection_id: str
    source: str
    method: str = "POST"
    path: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, ParameterSpec] = field(default_factory=dict)
    payload: Any = None
    response_fields: tuple[str, ...] = ()
    error_response_fields: tuple[str, ...] = ()
    timeout_seconds: float | None = None
    max_retries: int | None = None
    drop_nulls_in_lists: bool = False
    max_response_bytes: int | None = None
    description: str | None = None


def template_environment(**options: Any) -> ImmutableSandboxedEnvironment:
    """Create the sandboxed Jinja environment every action and mapping template runs in.

    Undefined names raise (StrictUndefined) so a typo never becomes an empty string.
    """
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True, **options
    )


_CHECK_ENV = template_environment()


def template_names(source: str, env: jinja2.Environment = _CHECK_ENV) -> set[str]:
    """Return the top-level names a template reads from its context.

    ``{{ user.name }}`` reads ``user``. Jinja's global functions (range, dict, ...) are left
    out. Raises jinja2.TemplateSyntaxError on a syntax error.
    """
    ast = env.parse(source)
    return set(meta.find_undeclared_variables(ast)) - set(env.globals)


def parse_action(document: Mapping[str, Any], *, source: str) -> ActionDefinition:
    """Validate an action document and build its definition.

    ``source`` names where the document came from (a file path, a Variable key) for
    messages. Raises ActionDefinitionError listing every problem with its field path.
    """
    if not isinstance(document, Mapping):
        raise ActionDefinitionError(
            source, [f"the action must be a JSON object, got {type(document).__name__}"]
        )

    problems: list[str] = []
    for key in sorted(set(document) - set(TOP_LEVEL_KEYS), key=str):
        problems.append(f"{key}: unknown field; known fields are {', '.join(TOP_LEVEL_KEYS)}")

    name = _name(document, problems)
    description = _optional_string(document, "description", problems)
    connection_id = _connection_id(document, problems)
    method = _method(document, problems)
    path = _path(document, problems)
    headers = _string_map(document, "headers", problems)
    query = _string_map(document, "query", problems)
    _check_header_names(headers, problems)
    parameters = _parameters(document.get("parameters", {}), problems)
    payload = document.get("payload")
    if payload is not None and method not in METHODS_WITH_BODY:
        problems.append(f"payload: a {method} request has no body; remove the payload")

    # Template checks use every declared name, so a parameter with an invalid spec is
    # reported once (for its spec) and not again as unknown in each template.
    raw_parameters = document.get("parameters", {})
    declared = set(raw_parameters) if isinstance(raw_parameters, Mapping) else set()
    _check_templates(path, headers, query, payload, declared, problems)

    definition = ActionDefinition(
        name=name,
        connection_id=connection_id,
        source=source,
        method=method,
        path=path,
        headers=headers,
        query=query,
        parameters=parameters,
        payload=payload,
        response_fields=_keep(document, "response", problems),
        error_response_fields=_keep(document, "error_response", problems),
        timeout_seconds=_timeout(document, problems),
        max_retries=_bounded_int(document, "max_retries", 0, MAX_RETRIES, problems),
        drop_nulls_in_lists=_boolean(document, "drop_nulls_in_lists", problems),
        max_response_bytes=_bounded_int(document, "max_response_bytes", 1, None, problems),
        description=description,
    )
    if problems:
        raise ActionDefinitionError(name or source, problems)
    return definition


def parse_action_json(text: str, *, source: str) -> ActionDefinition:
    """Parse an action from JSON text.

    Invalid JSON raises ActionDefinitionError naming the source, line and column.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ActionDefinitionError(
            source,
            [
                f"{source}: invalid JSON at line {error.lineno} column {error.colno}: "
                f"{error.msg}; fix the JSON syntax"
            ],
        ) from None
    return parse_action(document, source=source)


def load_action_file(path: str | os.PathLike[str]) -> ActionDefinition:
    """Read and parse an action from a UTF-8 JSON file."""
    source = os.fspath(path)
    with open(source, encoding="utf-8") as file:
        text = file.read()
    return parse_action_json(text, source=source)


# --- top-level fields ---------------------------------------------------------------------


def _name(document: Mapping[str, Any], problems: list[str]) -> str:
    value = document.get("name")
    if value is None:
        problems.append("name: missing; give the action a name such as send_push")
        return ""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        problems.append(
            f"name: {value!r} is not a valid name; use letters, digits and underscores, "
            "not starting with a digit (it is used as actions.<name> in later templates)"
        )
        return ""
    return value


def _optional_string(document: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"{key}: must be a string, got {_json_type(value)}")
        return None
    return value


def _connection_id(document: Mapping[str, Any], problems: list[str]) -> str:
    value = document.get("connection_id")
    if value is None:
        problems.append("connection_id: missing; name the endpoint connection to call")
        return ""
    if not isinstance(value, str) or not value.strip():
        problems.append(f"connection_id: must be a non-empty string, got {_json_type(value)}")
        return ""
    return value


def _method(document: Mapping[str, Any], problems: list[str]) -> str:
    value = document.get("method", "POST")
    if value not in METHODS:
        problems.append(f"method: {value!r} is not supported; use one of {', '.join(METHODS)}")
        return "POST"
    return str(value)


def _path(document: Mapping[str, Any], problems: list[str]) -> str:
    value = document.get("path", "")
    if not isinstance(value, str):
        problems.append(f"path: must be a string, got {_json_type(value)}")
        return ""
    if _SCHEME_RE.match(value.lstrip()) or "://" in value:
        problems.append(
            "path: must be relative to the endpoint's base URL, not an absolute URL; "
            "put the scheme and host in the endpoint connection"
        )
    elif value.lstrip().startswith("//"):
        problems.append("path: must not start with //, which names another host")
    if "\\" in value:
        problems.append("path: must not contain a backslash")
    return value


def _string_map(document: Mapping[str, Any], key: str, problems: list[str]) -> dict[str, str]:
    value = document.get(key, {})
    if not isinstance(value, Mapping):
        problems.append(f"{key}: must be an object of name to string, got {_json_type(value)}")
        return {}

    result: dict[str, str] = {}
    for item_name, item in value.items():
        if not isinstance(item, str):
            problems.append(f"{key}.{item_name}: must be a string, got {_json_type(item)}")
            continue
        if key == "query" and not item_name:
            problems.append("query: a query parameter name must not be empty")
            continue
        result[item_name] = item
    return result


def _check_header_names(headers: Mapping[str, str], problems: list[str]) -> None:
    for name, value in headers.items():
        if not _HEADER_NAME_RE.match(name):
            problems.append(
                f"headers.{name}: {name!r} is not a valid header name "
                "(RFC 7230 token: letters, digits and !#$%&'*+-.^_`|~)"
            )
        elif name.lower() in RESERVED_HEADERS:
            problems.append(f"headers.{name}: set by the provider; remove it from the action")
        if HEADER_VALUE_FORBIDDEN_RE.search(value):
            problems.append(f"headers.{name}: the value contains a line break or control character")


def _timeout(document: Mapping[str, Any], problems: list[str]) -> float | None:
    value = document.get("timeout_seconds")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS
    ):
        problems.append(
            f"timeout_seconds: {value!r} must be a number from {MIN_TIMEOUT_SECONDS} "
            f"to {MAX_TIMEOUT_SECONDS}"
        )
        return None
    return float(value)


def _bounded_int(
    document: Mapping[str, Any], key: str, minimum: int, maximum: int | None, problems: list[str]
) -> int | None:
    value = document.get(key)
    if value is None:
        return None
    in_range = isinstance(value, int) and value >= minimum and (maximum is None or value <= maximum)
    if isinstance(value, bool) or not in_range:
        limits = f"from {minimum} to {maximum}" if maximum is not None else f"of {minimum} or more"
        problems.append(f"{key}: {value!r} must be a whole number {limits}")
        return None
    return int(value)


def _boolean(document: Mapping[str, Any], key: str, problems: list[str]) -> bool:
    value = document.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"{key}: must be true or false, got {_json_type(value)}")
        return False
    return value


def _keep(document: Mapping[str, Any], key: str, problems: list[str]) -> tuple[str, ...]:
    value = document.get(key)
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        problems.append(f'{key}: must be an object such as {{"keep": ["id"]}}')
        return ()
    for unknown in sorted(set(value) - set(RESPONSE_KEYS), key=str):
        problems.append(f"{key}.{unknown}: unknown field; the only field is keep")

    keep = value.get("keep", [])
    if not isinstance(keep, list):
        problems.append(f"{key}.keep: must be a list of dot paths, got {_json_type(keep)}")
        return ()
    paths: list[str] = []
    for index, path in enumerate(keep):
        if not isinstance(path, str) or not _KEEP_PATH_RE.match(path):
            problems.append(
                f"{key}.keep[{index}]: {path!r} is not a dot path such as id or data.message_id"
            )
            continue
        paths.append(path)
    return tuple(paths)


# --- parameters ---------------------------------------------------------------------------


def _parameters(value: Any, problems: list[str]) -> dict[str, ParameterSpec]:
    if not isinstance(value, Mapping):
        problems.append(f"parameters: must be an object of name to spec, got {_json_type(value)}")
        return {}

    specs: dict[str, ParameterSpec] = {}
    for name, spec in value.items():
        parsed = _parameter(name, spec, problems)
        if parsed is not None:
            specs[name] = parsed
    return specs


def _parameter(name: str, spec: Any, problems: list[str]) -> ParameterSpec | None:
    where = f"parameters.{name}"
    if not _NAME_RE.match(name) or name in JINJA_RESERVED_NAMES:
        problems.append(
            f"{where}: {name!r} is not a valid parameter name; use letters, digits and "
            "underscores, not starting with a digit and not a Jinja keyword"
        )
        return None
    if not isinstance(spec, Mapping):
        problems.append(f'{where}: must be an object such as {{"type": "string"}}')
        return None

    count = len(problems)
    for key in sorted(set(spec) - set(PARAMETER_KEYS), key=str):
        problems.append(
            f"{where}.{key}: unknown field; known fields are {', '.join(PARAMETER_KEYS)}"
        )

    type_ = spec.get("type")
    if type_ is None:
        problems.append(f"{where}.type: missing; use one of {', '.join(PARAMETER_TYPES)}")
    elif type_ not in PARAMETER_TYPES:
        problems.append(
            f"{where}.type: {type_!r} is not a type; use one of {', '.join(PARAMETER_TYPES)}"
        )

    flags: dict[str, Any] = {}
    for flag, default in (("required", True), ("nullable", False)):
        flags[flag] = spec.get(flag, default)
        if not isinstance(flags[flag], bool):
            problems.append(f"{where}.{flag}: must be true or false, got {_json_type(flags[flag])}")

    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f"{where}.description: must be a string, got {_json_type(description)}")

    has_default = "default" in spec
    if has_default and type_ in PARAMETER_TYPES:
        problem = _default_problem(type_, spec["default"], nullable=flags["nullable"] is True)
        if problem:
            problems.append(f"{where}.default: {problem}")

    if len(problems) > count:
        return None
    return ParameterSpec(
        name=name,
        type=str(type_),
        required=flags["required"],
        default=spec.get("default"),
        has_default=has_default,
        nullable=flags["nullable"],
        description=description,
    )


def _default_problem(type_: str, value: Any, *, nullable: bool) -> str | None:
    """Return why ``value`` is not a valid JSON default of ``type_``, or None when it is."""
    if value is None:
        return None if nullable else "null is only allowed when nullable is true"

    item_type = LIST_ITEM_TYPES.get(type_, "")
    if type_ in LIST_TYPES:
        if not isinstance(value, list):
            return f"expected a list for type {type_}, got {_json_type(value)}"
        if item_type is None:
            return None
        for index, item in enumerate(value):
            if item is not None and not _matches_json_type(item_type, item):
                return f"item {index} is not a valid {item_type}"
        return None

    if not _matches_json_type(type_, value):
        return f"{_json_type(value)} is not a valid {type_}{_TYPE_HINTS.get(type_, '')}"
    return None


_TYPE_HINTS = {
    "dateTime": " (use an ISO 8601 string with an offset, such as 2024-05-01T09:30:00+00:00)",
    "date": " (use YYYY-MM-DD)",
}


def _matches_json_type(type_: str, value: Any) -> bool:
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "decimal":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "object":
        return isinstance(value, Mapping)
    if type_ == "date":
        return isinstance(value, str) and _is_iso_date(value)
    if type_ == "dateTime":
        return isinstance(value, str) and _is_aware_iso_datetime(value)
    return False


def _is_iso_date(text: str) -> bool:
    if not _DATE_RE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_aware_iso_datetime(text: str) -> bool:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.tzinfo is not None


# --- templates ----------------------------------------------------------------------------


def iter_payload_strings(payload: Any, where: str = "payload") -> Iterator[tuple[str, str]]:
    """Yield (field path, string) for every string leaf of a payload, in document order."""
    if isinstance(payload, str):
        yield where, payload
    elif isinstance(payload, Mapping):
        for key, value in payload.items():
            yield from iter_payload_strings(value, f"{where}.{key}")
    elif isinstance(payload, list):
        for index, value in enumerate(payload):
            yield from iter_payload_strings(value, f"{where}[{index}]")


def _check_templates(
    path: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    payload: Any,
    declared: set[str],
    problems: list[str],
) -> None:
    templates: list[tuple[str, str]] = [("path", path)]
    templates += [(f"headers.{name}", value) for name, value in headers.items()]
    templates += [(f"query.{name}", value) for name, value in query.items()]
    templates += list(iter_payload_strings(payload))

    used: set[str] = set()
    for where, source in templates:
        try:
            names = template_names(source)
        except jinja2.TemplateSyntaxError as error:
            problems.append(
                f"{where}: template syntax error at line {error.lineno}: {error.message}"
            )
            continue
        for unknown in sorted(names - declared):
            problems.append(
                f"{where}: unknown parameter {unknown!r}; declare it under parameters "
                "or fix the name"
            )
        used |= names

    for name in sorted(declared - used):
        problems.append(
            f"parameters.{name}: declared but unused; reference it in the path, a header, "
            f"the query or the payload as {{{{ {name} }}}}, or remove it"
        )


def _json_type(value: Any) -> str:
    """Name of a value's JSON type, for messages that must not echo the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


# --- JSON Schema --------------------------------------------------------------------------


def action_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of an action document.

    The schema covers structure and value ranges. Checks that need the templates
    (unknown or unused parameters, syntax errors) are made only by ``parse_action``.
    """
    template = {"type": "string", "description": "Text; may reference parameters as {{ name }}."}
    keep = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "keep": {
                "type": "array",
                "items": {"type": "string", "pattern": KEEP_PATH_PATTERN},
                "description": "Dot paths of response fields to keep, such as data.message_id.",
            }
        },
    }
    parameter = {
        "type": "object",
        "additionalProperties": False,
        "required": ["type"],
        "properties": {
            "type": {"enum": list(PARAMETER_TYPES)},
            "required": {"type": "boolean", "default": True},
            "default": {
                "description": "Value used when the mapping gives none; must match the type."
            },
            "nullable": {"type": "boolean", "default": False},
            "description": {"type": "string"},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://airflow-provider-journey/action-schema.json",
        "title": "Custom action",
        "description": "One REST call made for each profile of an audience.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "connection_id"],
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "description": {"type": "string"},
            "connection_id": {"type": "string", "minLength": 1},
            "method": {"enum": list(METHODS), "default": "POST"},
            "path": {
                **template,
                "default": "",
                "not": {"pattern": r"^(\s*//|[A-Za-z][A-Za-z0-9+.-]*:)"},
            },
            "headers": {
                "type": "object",
                "propertyNames": {"pattern": HEADER_NAME_PATTERN},
                "additionalProperties": template,
            },
            "query": {
                "type": "object",
                "propertyNames": {"minLength": 1},
                "additionalProperties": template,
            },
            "parameters": {
                "type": "object",
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": parameter,
            },
            "payload": {
                "description": "JSON body for POST, PUT and PATCH; string leaves are templates."
            },
            "response": keep,
            "error_response": keep,
            "timeout_seconds": {
                "type": "number",
                "minimum": MIN_TIMEOUT_SECONDS,
                "maximum": MAX_TIMEOUT_SECONDS,
            },
            "max_retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
            "drop_nulls_in_lists": {"type": "boolean", "default": False},
            "max_response_bytes": {"type": "integer", "minimum": 1},
        },
        "if": {"properties": {"method": {"enum": ["GET", "DELETE"]}}, "required": ["method"]},
        "then": {"properties": {"payload": {"type": "null"}}},
    }
