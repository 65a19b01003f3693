"""Per-profile rendering: map profile data onto parameters, then render the action's request.

Rendering runs in two stages, both in a sandboxed Jinja environment where an undefined
name raises:

1. ``ParameterMapping`` evaluates the DAG author's mapping (``{"token": "{{
   profile.push_token }}"}``) for one profile and coerces each value to its parameter's
   declared type.
2. ``ActionRenderer`` renders the action's path, headers, query and payload from those
   values into a ``PreparedRequest``.

Every template is compiled once, when the mapping or renderer is built, because both run
for every profile of an audience. A template string that is exactly one expression
(``"{{ points }}"``) keeps the native value of that expression; any other string renders
to text. Rendered text is never parsed back into a value, so ``"007"`` stays a string.
Every payload value is encoded by the JSON encoder, never spliced into JSON text as it
is. The constant parts of a payload are encoded once and each value per profile, which
gives the bytes of encoding the whole payload object in one call. Error messages name
the field and the value's type, never the value itself, because profile data can be
personal data.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context

from airflow_provider_journey.actions import (
    HEADER_VALUE_FORBIDDEN_RE,
    LIST_ITEM_TYPES,
    LIST_TYPES,
    ActionDefinition,
    ParameterSpec,
    template_environment,
    template_names,
)
from airflow_provider_journey.exceptions import ActionDefinitionError, RenderError
from airflow_provider_journey.types import PreparedRequest, Profile

# Names a mapping template can read.
MAPPING_CONTEXT_NAMES = frozenset({"profile", "profile_id", "actions", "run"})

_MISSING: Any = object()

_INTEGER_RE = re.compile(r"^[+-]?\d+$")
_DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
# A whole template string of the form {{ expr }}, with optional whitespace control marks.
_EXPRESSION_RE = re.compile(r"^\{\{[-+]?(?P<expression>.*?)[-+]?\}\}$", re.DOTALL)
_PATH_FORBIDDEN_RE = re.compile(r"[\s\x00-\x1f\x7f\\?#]")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# --- value formatting ---------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """Encode the few non-JSON types profile data commonly carries (dates, decimals)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON serializable")


# One encoder for every payload: json.dumps with options builds a new encoder per call.
_PAYLOAD_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
)


def encode_json(value: Any) -> bytes:
    """Encode a payload as compact UTF-8 JSON; NaN and infinity raise ValueError."""
    return _PAYLOAD_ENCODER.encode(value).encode("utf-8")


def format_text(value: Any) -> str:
    """Format a value for text: null is empty, booleans are true/false, lists and objects are JSON.

    Jinja calls this on the result of every ``{{ }}`` in a string that mixes text and
    expressions, and the renderer calls it on header and query values.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return str(value)


def _format_path_segment(value: Any) -> str:
    """Percent-encode a value inserted into the path, so a "/" or ".." in data stays data."""
    if value is None:
        raise RenderError(
            "an expression in the path is null; map a value or make the parameter required",
            field="path",
        )
    return quote(format_text(value), safe="")


_TEXT_ENV = template_environment(finalize=format_text)
_PATH_ENV = template_environment(finalize=_format_path_segment)


# --- compiled templates -------------------------------------------------------------------


class CompiledValue:
    """A template string, or a constant, compiled once and evaluated per profile.

    Kinds: ``constant`` (no template syntax, or not a string), ``expression`` (the string is
    exactly one ``{{ expr }}`` and evaluates to its native value) and ``text`` (renders to a
    string).

    Two shortcuts skip Jinja for the most common templates, because Jinja builds a new
    context for every call. ``lookup`` is set when the expression is a name or a chain of
    attributes on a name (``{{ token }}``, ``{{ profile.first_name }}``). ``parts`` is set
    when a text template mixes only literal text with such expressions. A shortcut
    returns the value Jinja would return, and when it cannot (a missing key, an object
    that is not a plain dict, an attribute name that a dict also has as a method), the
    template runs in Jinja, which gives the usual result or error.
    """

    __slots__ = ("_constant", "_expression", "_finalize", "_template", "kind", "lookup", "parts")

    def __init__(
        self,
        kind: str,
        *,
        constant: Any = None,
        expression: TemplateExpression | None = None,
        template: jinja2.Template | None = None,
        lookup: tuple[str, ...] | None = None,
        parts: tuple[str | tuple[str, ...], ...] | None = None,
        finalize: Callable[[Any], str] | None = None,
    ) -> None:
        self.kind = kind
        self.lookup = lookup
        self.parts = parts
        self._constant = constant
        self._expression = expression
        self._template = template
        self._finalize = finalize

    @property
    def name(self) -> str | None:
        """The name when the expression is exactly one bare name such as ``{{ token }}``."""
        if self.lookup is not None and len(self.lookup) == 1:
            return self.lookup[0]
        return None

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against ``context``; an undefined result raises jinja2.UndefinedError."""
        if self.kind == "constant":
            return self._constant
        if self.lookup is not None:
            value = _plain_lookup(context, self.lookup)
            if value is not _MISSING:
                return value
        if self.parts is not None:
            text = self._join_parts(context)
            if text is not None:
                return text
        if self._expression is not None:
            value = _evaluate_expression(self._expression, context)
            if isinstance(value, jinja2.Undefined):
                str(value)  # StrictUndefined raises UndefinedError with the missing name.
            return value
        assert self._template is not None
        return _render_template(self._template, context)

    def _join_parts(self, context: Mapping[str, Any]) -> str | None:
        """Render a text template of literals and lookups, or None when a lookup misses."""
        assert self.parts is not None and self._finalize is not None
        pieces: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = _plain_lookup(context, part)
            if value is _MISSING:
                return None
            pieces.append(str(self._finalize(value)))
        return "".join(pieces)


def _new_context(template: jinja2.Template, names: Mapping[str, Any]) -> Context:
    """Build the context ``Template.render(names)`` builds, without its slow copy of the globals.

    ``Template.new_context`` copies ``template.globals``, a ChainMap, key by key. That
    copy took about 6 of the 7 µs of rendering a short text template (measured with
    Jinja 3.1.6). A template made by ``from_string`` without globals of its own has
    exactly the environment's globals, so one dict merge builds the same parent, with
    the names overriding the globals as in Jinja. The context's ``globals_keys`` is
    left empty because only ``Template.module`` reads it, and it is never used here.
    """
    environment = template.environment
    parent = {**environment.globals, **names}
    return environment.context_class(environment, parent, template.name, template.blocks)


def _render_template(template: jinja2.Template, names: Mapping[str, Any]) -> str:
    """Render ``template`` with ``names``, as ``Template.render`` does but with a cheaper context.

    Every call gets a context of its own, so a ``{% set %}`` in one template never
    reaches another template of the same profile.
    """
    context = _new_context(template, names)
    try:
        return template.environment.concat(template.root_render_func(context))
    except Exception:
        template.environment.handle_exception()


def _evaluate_expression(expression: TemplateExpression, names: Mapping[str, Any]) -> Any:
    """Evaluate a compiled expression, as calling it does but with a cheaper context.

    ``compile_expression`` compiles ``{% set result = <expression> %}`` into a template
    that the expression object keeps as ``_template``. When a Jinja version stores it
    differently, the expression is called as usual.
    """
    template = getattr(expression, "_template", None)
    if not isinstance(template, jinja2.Template):
        return expression(names)
    context = _new_context(template, names)
    for _ in template.root_render_func(context):
        pass
    return context.vars["result"]


# Attribute names that Jinja resolves on a dict itself (``profile.items`` is the method),
# so a lookup of one of them must go through Jinja.
_DICT_ATTRIBUTES = frozenset(dir(dict))


def _plain_lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Follow a name and its attributes through plain dicts; ``_MISSING`` when Jinja must decide."""
    value = context.get(path[0], _MISSING)
    for attribute in path[1:]:
        if type(value) is not dict or attribute in _DICT_ATTRIBUTES:
            return _MISSING
        value = value.get(attribute, _MISSING)
    return value


def _lookup_path(node: nodes.Node) -> tuple[str, ...] | None:
    """Return ``("profile", "first_name")`` for ``profile.first_name``; None for other nodes."""
    attributes: list[str] = []
    while isinstance(node, nodes.Getattr):
        attributes.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    return (node.name, *reversed(attributes))


def _text_parts(source: str, env: jinja2.Environment) -> tuple[str | tuple[str, ...], ...] | None:
    """Split a text template into literal strings and lookup paths, or None if it has more."""
    body = env.parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts: list[str | tuple[str, ...]] = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
            continue
        path = _lookup_path(node)
        if path is None:
            return None
        parts.append(path)
    return tuple(parts)


def compile_value(
    value: Any, env: jinja2.Environment = _TEXT_ENV, *, native: bool = True
) -> CompiledValue:
    """Compile a template string (or wrap a constant) for repeated evaluation.

    With ``native``, a string that is exactly one expression evaluates to the expression's
    Python value; otherwise every template renders to text. Raises
    jinja2.TemplateSyntaxError.
    """
    if not isinstance(value, str):
        return CompiledValue("constant", constant=value)
    if "{{" not in value and "{%" not in value and "{#" not in value:
        return CompiledValue("constant", constant=value)

    template = env.from_string(value)
    if native:
        node = _single_expression_node(value, env)
        match = _EXPRESSION_RE.match(value)
        if node is not None and match is not None:
            try:
                expression = env.compile_expression(match["expression"], undefined_to_none=False)
            except jinja2.TemplateSyntaxError:
                # Only a string with a comment after the expression gets here; it renders
                # as text.
                return _text_value(value, template, env)
            return CompiledValue("expression", expression=expression, lookup=_lookup_path(node))
    return _text_value(value, template, env)


def _text_value(source: str, template: jinja2.Template, env: jinja2.Environment) -> CompiledValue:
    parts = _text_parts(source, env)
    finalize = env.finalize if parts is not None else None
    return CompiledValue("text", template=template, parts=parts, finalize=finalize)


def _single_expression_node(source: str, env: jinja2.Environment) -> nodes.Expr | None:
    """Return the expression node when the whole string is one ``{{ expr }}``."""
    body = env.parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    node = body[0].nodes[0]
    if isinstance(node, nodes.TemplateData):
        return None
    return node


def _describe_failure(error: Exception) -> str:
    """Describe a template failure without the data it was working on."""
    if isinstance(error, jinja2.UndefinedError):
        return f"undefined value ({error.message})"
    if isinstance(error, SecurityError):
        return "the expression is not allowed in the sandbox"
    return f"the expression failed with {type(error).__name__}"


# --- stage 1: mapping profile data onto parameters ----------------------------------------


class ParameterMapping:
    """The DAG author's mapping of profile data onto an action's parameters.

    Each mapping value is a template (or a constant) evaluated with ``profile`` (the
    attributes, plus ``id`` unless the record has its own ``id`` attribute), ``profile_id``,
    ``actions`` (kept fields of earlier actions) and ``run`` (dag_id, run_id, task_id,
    map_index, logical_date, ds, journey).

    Missing values and nulls:

    - A value is missing when the parameter is not mapped, or its template reads a profile
      attribute the record does not have. A missing value takes the parameter's default;
      without one, an optional parameter is null (absent) and a required one is an error.
    - A null value (for example SQL NULL) is kept when the parameter is nullable. Otherwise
      it takes the default, and without one it is an error.
    """

    def __init__(self, action: ActionDefinition, mapping: Mapping[str, Any]) -> None:
        self.action = action
        problems: list[str] = []

        for name in sorted(set(mapping) - set(action.parameters), key=str):
            problems.append(
                f"mapping.{name}: {action.name!r} has no parameter {name!r}; "
                f"its parameters are {', '.join(action.parameters) or '(none)'}"
            )

        # Each step: the parameter, its compiled mapping, its default and its field name.
        self._steps: list[tuple[ParameterSpec, CompiledValue | None, Any, str]] = []
        for name, spec in action.parameters.items():
            compiled = None
            if name in mapping:
                compiled = self._compile(name, mapping[name], problems)
            elif not spec.has_default and spec.required:
                problems.append(
                    f"mapping.{name}: the required parameter {name!r} has no default; map it, "
                    f"for example {{{name!r}: '{{{{ profile.{name} }}}}'}}"
                )
            default = self._default(spec, problems)
            self._steps.append((spec, compiled, default, f"parameters.{spec.name}"))

        if problems:
            raise ActionDefinitionError(action.name, problems, in_mapping=True)

    @staticmethod
    def _compile(name: str, value: Any, problems: list[str]) -> CompiledValue | None:
        try:
            compiled = compile_value(value)
            names = template_names(value, _TEXT_ENV) if isinstance(value, str) else set()
        except jinja2.TemplateSyntaxError as error:
            problems.append(
                f"mapping.{name}: template syntax error at line {error.lineno}: {error.message}"
            )
            return None
        for unknown in sorted(names - MAPPING_CONTEXT_NAMES):
            problems.append(
                f"mapping.{name}: unknown name {unknown!r}; a mapping can read "
                f"{', '.join(sorted(MAPPING_CONTEXT_NAMES))}, as in {{{{ profile.{unknown} }}}}"
            )
        return compiled

    def _default(self, spec: ParameterSpec, problems: list[str]) -> Any:
        """Coerce the declared default once; ``_MISSING`` when there is none."""
        if not spec.has_default or spec.default is None:
            return spec.default if spec.has_default else _MISSING
        try:
            return coerce_value(spec, spec.default)
        except RenderError as error:
            problems.append(f"parameters.{spec.name}.default: {error}")
            return _MISSING

    def evaluate(self, profile: Profile, run: Mapping[str, Any]) -> dict[str, Any]:
        """Return the typed value of every parameter for one profile.

        Raises RenderError with field ``parameters.<name>`` when a value is missing, null or
        of the wrong type.
        """
        context = {
            "profile": {"id": profile.id, **profile.attributes},
            "profile_id": profile.id,
            "actions": profile.actions,
            "run": run,
        }
        values: dict[str, Any] = {}
        for spec, compiled, default, field in self._steps:
            values[spec.name] = self._evaluate_one(spec, compiled, default, field, context)
        return values

    @staticmethod
    def _evaluate_one(
        spec: ParameterSpec,
        compiled: CompiledValue | None,
        default: Any,
        field: str,
        context: Mapping[str, Any],
    ) -> Any:
        value = _MISSING
        reason = "it is not mapped"
        if compiled is not None:
            try:
                value = compiled.evaluate(context)
            except jinja2.UndefinedError as error:
                # A mapped name that is undefined is a typo or a missing attribute: an error
                # for this profile even when the parameter has a default, so a typo never
                # sends the default silently. ``| default(none)`` opts into the default.
                raise RenderError(
                    f"{_describe_failure(error)}; fix the mapping or add the attribute to "
                    "the audience, or write '| default(none)' to use the parameter's default "
                    "when it is missing",
                    field=field,
                ) from None
            except Exception as error:  # any failure of the author's expression, per profile
                raise RenderError(
                    f"{_describe_failure(error)}; check the mapping", field=field
                ) from None

        if value is None and not spec.nullable:
            if default is not _MISSING:
                return default
            raise RenderError(
                "the value is null but the parameter is not nullable; map a value, "
                "declare a default or set nullable to true",
                field=field,
            )
        if value is _MISSING:
            if default is not _MISSING:
                return default
            if not spec.required:
                return None
            raise RenderError(
                f"no value for the required parameter: {reason}; add the attribute to the "
                "audience, fix the mapping or declare a default",
                field=field,
            )
        if value is None:
            return None
        return coerce_value(spec, value)


# --- coercion -----------------------------------------------------------------------------


class _CoercionError(ValueError):
    """A value does not fit a type; the message names the type and never the value."""


def coerce_value(spec: ParameterSpec, value: Any) -> Any:
    """Convert ``value`` to the JSON-ready form of the parameter's type.

    Raises RenderError with field ``parameters.<name>``; the message names the value's
    Python type, not the value.
    """
    try:
        if spec.type in LIST_TYPES:
            return _coerce_list(spec.type, value)
        return _COERCERS[spec.type](value)
    except _CoercionError as error:
        raise RenderError(str(error), field=f"parameters.{spec.name}") from None


def _coerce_list(type_: str, value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _CoercionError(
            f"expected a list for type {type_}, got {type(value).__name__}; map a list "
            "(text is never parsed into a list)"
        )
    item_type = LIST_ITEM_TYPES[type_]
    if item_type is None:
        return list(value)

    coerce_item = _COERCERS[item_type]
    items: list[Any] = []
    for index, item in enumerate(value):
        if item is None:
            items.append(None)
            continue
        try:
            items.append(coerce_item(item))
        except _CoercionError as error:
            raise _CoercionError(f"item {index}: {error}") from None
    return items


def _type_name(value: Any) -> str:
    return type(value).__name__


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    raise _CoercionError(f"expected a string, got {_type_name(value)}; map text or a number")


def _to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise _CoercionError("expected an integer, got bool; map a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER_RE.match(value.strip()):
        return int(value.strip())
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return int(value)
    raise _CoercionError(
        f"expected an integer, got {_type_name(value)} that is not a whole number; "
        'map a whole number such as 42 or "42"'
    )


def _to_decimal(value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _DECIMAL_RE.match(value.strip()):
        number = float(value.strip())
    if number is None or not math.isfinite(number):
        raise _CoercionError(
            f"expected a finite number, got {_type_name(value)} that is not one; "
            'map a number such as 9.5 or "9.5"'
        )
    return number


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise _CoercionError(
        f"expected a boolean, got {_type_name(value)} that is not one; "
        "map true/false, yes/no or 1/0"
    )


def _to_datetime(value: Any) -> str:
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
    if parsed is None:
        raise _CoercionError(
            f"expected a date-time, got {_type_name(value)} that is not an ISO 8601 "
            "date-time; map a datetime or a string such as 2024-05-01T09:30:00+00:00"
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _CoercionError(
            f"the date-time ({_type_name(value)}) has no time zone; add an offset such as "
            "+00:00 or Z, or use a timezone-aware datetime"
        )
    return parsed.isoformat()


def _to_date(value: Any) -> str:
    if isinstance(value, datetime):
        raise _CoercionError(
            "expected a date, got datetime; map a date or a YYYY-MM-DD string "
            "(for example {{ profile.signed_up.date() }})"
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise _CoercionError(
        f"expected a date, got {_type_name(value)} that is not YYYY-MM-DD; "
        "map a date or a string such as 2024-05-01"
    )


def _to_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise _CoercionError(
        f"expected an object, got {_type_name(value)}; map a dict "
        "(text is never parsed into an object)"
    )


_COERCERS: dict[str, Callable[[Any], Any]] = {
    "string": _to_string,
    "integer": _to_integer,
    "decimal": _to_decimal,
    "boolean": _to_boolean,
    "dateTime": _to_datetime,
    "date": _to_date,
    "object": _to_object,
}


# --- stage 2: rendering the request -------------------------------------------------------


def idempotency_key(key_namespace: str, action_name: str, profile_id: str) -> str:
    """Return the Idempotency-Key for one profile in one action run, as a sha256 hex digest.

    ``key_namespace`` is "dag_id/run_id/task_id/map_index". Each part is prefixed with its
    length, so no two different triples hash the same text, whatever characters they hold.
    """
    return _IdempotencyKeys(key_namespace, action_name).key(profile_id)


class _IdempotencyKeys:
    """The idempotency keys of one action run: the hash of the common prefix is computed once."""

    __slots__ = ("_prefix",)

    def __init__(self, key_namespace: str, action_name: str) -> None:
        text = "journey-idempotency-key/v1|" + "|".join(
            f"{len(part)}:{part}" for part in (key_namespace, action_name)
        )
        self._prefix = hashlib.sha256(text.encode("utf-8"))

    def key(self, profile_id: str) -> str:
        """Return the key of one profile, the same as ``idempotency_key`` returns."""
        digest = self._prefix.copy()
        digest.update(f"|{len(profile_id)}:{profile_id}".encode())
        return digest.hexdigest()


def check_rendered_path(path: str) -> str:
    """Return the path with a leading "/" (or empty); raise RenderError if it leaves the host.

    Rejected: a scheme, a leading "//", a ".." segment (also after percent-decoding, up to
    three rounds), a backslash, "?", "#", whitespace and control characters.
    """
    if not path:
        return ""
    if _SCHEME_RE.match(path) or path.startswith("//"):
        raise RenderError(
            "the rendered path names another host or scheme; it must stay relative to "
            "the endpoint's base URL",
            field="path",
        )
    if _PATH_FORBIDDEN_RE.search(path):
        raise RenderError(
            "the rendered path contains whitespace, a control character, a backslash, "
            '"?" or "#"; use query for query parameters',
            field="path",
        )
    if _has_dot_dot_segment(path):
        raise RenderError(
            'the rendered path contains a ".." segment, which would leave the base path',
            field="path",
        )
    return path if path.startswith("/") else "/" + path


def _has_dot_dot_segment(path: str) -> bool:
    text = path
    for _ in range(3):
        segments = re.split(r"[/\\]", text)
        if ".." in segments:
            return True
        decoded = unquote(text)
        if decoded == text:
            return False
        text = decoded
    return ".." in re.split(r"[/\\]", text)


def _drop_nulls_in_lists(value: Any) -> Any:
    if isinstance(value, list):
        return [_drop_nulls_in_lists(item) for item in value if item is not None]
    if isinstance(value, dict):
        return {key: _drop_nulls_in_lists(item) for key, item in value.items()}
    return value


_PayloadBuilder = Callable[[Mapping[str, Any]], Any]


class ActionRenderer:
    """Renderer of an action's request for one profile, from its parameter values.

    Templates are compiled when the renderer is built. ``render`` is called per profile
    and raises RenderError naming the field (``path``, ``headers.<name>``,
    ``query.<name>``, ``payload.<path>``) when the request cannot be built safely.

    Header and query templates that are exactly one expression and evaluate to null are
    left out of the request. A query value that is a list becomes one pair per item.
    """

    def __init__(self, action: ActionDefinition, *, key_namespace: str) -> None:
        self.action = action
        self.key_namespace = key_namespace
        self._keys = _IdempotencyKeys(key_namespace, action.name)
        self._path = compile_value(action.path, _PATH_ENV, native=False)
        self._checked_path = _checked_constant_path(self._path)
        self._headers = [
            (name, f"headers.{name}", compiled, _checked_constant_header(compiled))
            for name, compiled in (
                (name, compile_value(value)) for name, value in action.headers.items()
            )
        ]
        self._query = [(name, compile_value(value)) for name, value in action.query.items()]
        self._has_body = action.payload is not None
        # The payload is built as an object only when it cannot be rendered as text with
        # holes: dropping nulls from lists changes the JSON around a leaf.
        self._payload_text = None
        if not action.drop_nulls_in_lists:
            self._payload_text = _PayloadText.compile(action.payload, "payload")
        self._payload: _PayloadBuilder | None = None
        if self._payload_text is None:
            self._payload = self._compile_payload(action.payload, "payload")
        self._sets_content_type = any(name.lower() == "content-type" for name in action.headers)

    def render(self, profile_id: str, values: Mapping[str, Any]) -> PreparedRequest:
        """Render the request for one profile from its typed parameter values."""
        key = self._keys.key(profile_id)
        body = self._render_body(values) if self._has_body else None

        headers = self._render_headers(values)
        if body is not None and not self._sets_content_type:
            headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = key

        return PreparedRequest(
            profile_id=profile_id,
            method=self.action.method,
            path=self._render_path(values),
            headers=headers,
            query=self._render_query(values),
            body=body,
            idempotency_key=key,
        )

    def _render_path(self, values: Mapping[str, Any]) -> str:
        if self._checked_path is not None:
            return self._checked_path
        path = _evaluate(self._path, values, "path")
        return check_rendered_path(str(path))

    def _render_headers(self, values: Mapping[str, Any]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, field, compiled, checked_text in self._headers:
            if checked_text is not None:
                headers[name] = checked_text
                continue
            value = _evaluate(compiled, values, field)
            if value is None:
                continue
            headers[name] = _check_header_value(format_text(value), field)
        return headers

    def _render_query(self, values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        pairs: list[tuple[str, str]] = []
        for name, compiled in self._query:
            value = _evaluate(compiled, values, f"query.{name}")
            items = value if isinstance(value, list | tuple) else [value]
            pairs.extend((name, format_text(item)) for item in items if item is not None)
        return tuple(pairs)

    def _render_body(self, values: Mapping[str, Any]) -> bytes:
        payload: Any = None
        if self._payload is not None:
            payload = self._payload(values)
            if self.action.drop_nulls_in_lists:
                payload = _drop_nulls_in_lists(payload)
        try:
            if self._payload_text is not None:
                return self._payload_text.render(values)
            return encode_json(payload)
        except (TypeError, ValueError) as error:
            reason = "NaN or infinity" if isinstance(error, ValueError) else str(error)
            raise RenderError(
                f"the payload cannot be encoded as JSON: {reason}; map JSON-compatible values",
                field="payload",
            ) from None

    def _compile_payload(self, payload: Any, where: str) -> _PayloadBuilder:
        """Turn the payload template into a function from parameter values to a Python object."""
        if isinstance(payload, Mapping):
            members = [
                (key, self._compile_payload(item, f"{where}.{key}"))
                for key, item in payload.items()
            ]
            return lambda values: {key: build(values) for key, build in members}
        if isinstance(payload, list):
            items = [self._compile_payload(item, f"{where}[{i}]") for i, item in enumerate(payload)]
            return lambda values: [build(values) for build in items]

        compiled = compile_value(payload)
        if compiled.kind == "constant":
            return lambda values: payload
        return lambda values: _evaluate(compiled, values, where)


class _NotEncodable(Exception):
    """A payload template ``_PayloadText`` cannot encode ahead, so it is built as an object."""


class _PayloadText:
    """A payload template as JSON text with holes: constants are encoded once, leaves per profile.

    ``render`` returns the bytes that building the payload object and encoding it with
    ``encode_json`` would return, because JSON encodes a container as its members'
    encodings joined by fixed separators. All leaves are evaluated before any is
    encoded, so a profile with both a template error and an unencodable value gets
    the template error, as with the whole object. ``compile`` returns None for a
    template that has a key that is not a string, or a constant that cannot be
    encoded, and the renderer then builds the object for every profile.
    """

    __slots__ = ("_leaves", "_texts")

    def __init__(self, texts: list[str], leaves: list[tuple[CompiledValue, str]]) -> None:
        # texts[i] comes before leaves[i] and texts[-1] after the last leaf. A leaf that
        # is one bare name, such as {{ token }}, also carries the name, so render() can
        # read it from the values without a call.
        self._texts = texts
        self._leaves = [(compiled, compiled.name, where) for compiled, where in leaves]

    @classmethod
    def compile(cls, payload: Any, where: str) -> _PayloadText | None:
        """Compile a payload template, or return None when it must be built as an object."""
        texts: list[str] = [""]
        leaves: list[tuple[CompiledValue, str]] = []
        try:
            cls._add(payload, where, texts, leaves)
        except _NotEncodable:
            return None
        return cls(texts, leaves)

    @classmethod
    def _add(
        cls, node: Any, where: str, texts: list[str], leaves: list[tuple[CompiledValue, str]]
    ) -> None:
        # Walks the template in the order of ActionRenderer._compile_payload, which is
        # also the order in which JSON encodes the members.
        if isinstance(node, Mapping):
            texts[-1] += "{"
            for index, (key, item) in enumerate(node.items()):
                if not isinstance(key, str):
                    raise _NotEncodable(where)
                texts[-1] += ("," if index else "") + encode_basestring(key) + ":"
                cls._add(item, f"{where}.{key}", texts, leaves)
            texts[-1] += "}"
            return
        if isinstance(node, list):
            texts[-1] += "["
            for index, item in enumerate(node):
                texts[-1] += "," if index else ""
                cls._add(item, f"{where}[{index}]", texts, leaves)
            texts[-1] += "]"
            return

        compiled = compile_value(node)
        if compiled.kind != "constant":
            leaves.append((compiled, where))
            texts.append("")
            return
        try:
            texts[-1] += _PAYLOAD_ENCODER.encode(node)
        except (TypeError, ValueError):
            raise _NotEncodable(where) from None

    def render(self, values: Mapping[str, Any]) -> bytes:
        """Render the payload for one profile as compact UTF-8 JSON.

        Raises RenderError naming the leaf when a template fails, and TypeError or
        ValueError when a value cannot be encoded, as ``encode_json`` does.
        """
        leaf_values: list[Any] = []
        for compiled, name, where in self._leaves:
            value = _MISSING if name is None else values.get(name, _MISSING)
            if value is _MISSING:
                value = _evaluate(compiled, values, where)
            leaf_values.append(value)
        texts = self._texts
        pieces = [texts[0]]
        for value, text in zip(leaf_values, texts[1:], strict=True):
            pieces.append(_encode_leaf(value))
            pieces.append(text)
        return "".join(pieces).encode("utf-8")


def _encode_leaf(value: Any) -> str:
    """Encode one payload value as ``_PAYLOAD_ENCODER`` does, with the common types inline."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    return _PAYLOAD_ENCODER.encode(value)


def _check_header_value(text: str, field: str) -> str:
    """Return ``text`` when a header can carry it; raise RenderError naming ``field`` otherwise."""
    if HEADER_VALUE_FORBIDDEN_RE.search(text):
        raise RenderError(
            "the rendered value contains a line break or control character, which "
            "a header cannot carry; clean the profile data or move it to the payload",
            field=field,
        )
    return text


def _checked_constant_path(compiled: CompiledValue) -> str | None:
    """Check a path without templates once; None when each profile must render and check it.

    A constant path that fails the check also returns None, so the per-profile check
    raises its error for every profile, at the same step of rendering.
    """
    if compiled.kind != "constant":
        return None
    try:
        return check_rendered_path(str(compiled.evaluate({})))
    except RenderError:
        return None


def _checked_constant_header(compiled: CompiledValue) -> str | None:
    """Format and check a header value without templates once; None leaves it to each profile.

    None also covers a constant null, which leaves the header out, and a value a
    header cannot carry, which fails every profile in the per-profile check.
    """
    if compiled.kind != "constant":
        return None
    value = compiled.evaluate({})
    if value is None:
        return None
    text = format_text(value)
    if HEADER_VALUE_FORBIDDEN_RE.search(text):
        return None
    return text


def _evaluate(compiled: CompiledValue, values: Mapping[str, Any], field: str) -> Any:
    """Evaluate an action template; any failure becomes a RenderError naming ``field``."""
    try:
        return compiled.evaluate(values)
    except RenderError:
        raise
    except Exception as error:  # a template failure is a per-profile error, never a crash
        raise RenderError(
            f"{_describe_failure(error)}; check the parameter values and the action's template",
            field=field,
        ) from None
