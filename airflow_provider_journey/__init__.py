"""Custom actions for Apache Airflow journeys.

The names a DAG author imports are re-exported here. They load on first use, so
importing the Airflow-free engine (``airflow_provider_journey.engine``) does not
import Airflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CustomActionOperator": "airflow_provider_journey.operators.custom_action",
    "AudienceSplitOperator": "airflow_provider_journey.operators.split",
    "CustomActionHook": "airflow_provider_journey.hooks.custom_action",
    "SqlAudience": "airflow_provider_journey.audiences",
    "FileAudience": "airflow_provider_journey.audiences",
    "ListAudience": "airflow_provider_journey.audiences",
    "OutcomesAudience": "airflow_provider_journey.audiences",
    "ActionDefinition": "airflow_provider_journey.actions",
    "load_action": "airflow_provider_journey.loading",
    "merge_summaries": "airflow_provider_journey.summary",
}

__all__ = [
    "ActionDefinition",
    "AudienceSplitOperator",
    "CustomActionHook",
    "CustomActionOperator",
    "FileAudience",
    "ListAudience",
    "OutcomesAudience",
    "SqlAudience",
    "load_action",
    "merge_summaries",
]

if TYPE_CHECKING:
    from airflow_provider_journey.actions import ActionDefinition
    from airflow_provider_journey.audiences import (
        FileAudience,
        ListAudience,
        OutcomesAudience,
        SqlAudience,
    )
    from airflow_provider_journey.hooks.custom_action import CustomActionHook
    from airflow_provider_journey.loading import load_action
    from airflow_provider_journey.operators.custom_action import CustomActionOperator
    from airflow_provider_journey.operators.split import AudienceSplitOperator
    from airflow_provider_journey.summary import merge_summaries


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_provider_journey' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
