"""Turn what a DAG author passes as ``audience`` into an Audience."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.definitions.xcom_arg import XComArg

from airflow_provider_journey.audiences import Audience, FileAudience, ListAudience
from airflow_provider_journey.storage import to_path

_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._=-]+")


def to_audience(value: Any, *, id_field: str) -> Audience:
    """Return an Audience for an audience object, a list of dicts, a path or a split branch.

    A split branch is the XCom dict ``{"uri": ..., "count": ..., "id_field": ...}`` that
    AudienceSplitOperator pushes per branch.
    """
    if hasattr(value, "profiles"):
        audience: Audience = value
        return audience
    if isinstance(value, Mapping) and "uri" in value:
        return FileAudience(value["uri"], format="jsonl", id_field=value.get("id_field", id_field))
    if isinstance(value, (str, os.PathLike)):
        return FileAudience(value, id_field=id_field)
    if isinstance(value, Sequence) and all(isinstance(item, Mapping) for item in value):
        return ListAudience(value, id_field=id_field)
    raise TypeError(
        f"audience of type {type(value).__name__} is not supported; pass an Audience "
        "(SqlAudience, FileAudience, OutcomesAudience, ListAudience), a list of dicts, "
        "a file path, or a split branch's XCom"
    )


def results_directory(base: str | None, *parts: str) -> Any:
    """Return ``base/part/...`` as a path, with characters unsafe in object keys replaced.

    ``base`` defaults to the ``[journey] results_base`` setting, else
    ``$AIRFLOW_HOME/journey-results``.
    """
    path = to_path(base or default_results_base())
    for part in parts:
        path = path / _UNSAFE_PATH_CHARS.sub("_", part)
    return path


def default_results_base() -> str:
    """Return the configured results base: ``[journey] results_base`` or under AIRFLOW_HOME."""
    from airflow.configuration import conf

    home = os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))
    return str(conf.get("journey", "results_base", fallback=os.path.join(home, "journey-results")))


def depend_on_nested_xcoms(operator: BaseOperator, audience: Any) -> None:
    """Make the task depend on XComArgs inside an audience object's template fields.

    Airflow finds XComArgs in an operator's own fields, lists and dicts, but not in
    the attributes of an object such as ``OutcomesAudience(results=push.output)``.
    """
    for name in getattr(audience, "template_fields", ()):
        XComArg.apply_upstream_relationship(operator, getattr(audience, name, None))
