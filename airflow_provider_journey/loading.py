"""Load an action definition from an Airflow Variable, a JSON file, a dict or a definition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_journey.actions import (
    ActionDefinition,
    load_action_file,
    parse_action,
    parse_action_json,
)
from airflow_provider_journey.exceptions import ActionDefinitionError

VARIABLE_PREFIX = "journey_action_"


def variable_key(action_name: str) -> str:
    """Return the Airflow Variable key of an action: ``journey_action_<name>``."""
    return f"{VARIABLE_PREFIX}{action_name}"


def load_action(action: str | Mapping[str, Any] | ActionDefinition) -> ActionDefinition:
    """Return a checked action definition.

    A string ending in ``.json`` is a file path; any other string is an action name,
    read from the Variable ``journey_action_<name>`` (for example set through
    ``AIRFLOW_VAR_JOURNEY_ACTION_PUSH_WELCOME``).
    """
    if isinstance(action, ActionDefinition):
        return action
    if isinstance(action, Mapping):
        return parse_action(action, source="inline action")
    if action.endswith(".json"):
        return load_action_file(action)
    return _load_from_variable(action)


def _load_from_variable(name: str) -> ActionDefinition:
    from airflow.sdk import Variable

    key = variable_key(name)
    sentinel = object()
    text = Variable.get(key, default=sentinel)
    if text is sentinel:
        raise ActionDefinitionError(
            name,
            [
                f"Variable {key!r} not found; add the action's JSON under that key "
                f'(UI, `airflow variables set {key} "$(cat action.json)"`, or '
                f"AIRFLOW_VAR_{key.upper()})"
            ],
        )
    if not isinstance(text, str):
        raise ActionDefinitionError(name, [f"Variable {key!r}: expected JSON text"])

    definition = parse_action_json(text, source=f"Variable {key!r}")
    if definition.name != name:
        raise ActionDefinitionError(
            name,
            [f"Variable {key!r} holds action {definition.name!r}; the key must match the name"],
        )
    return definition
