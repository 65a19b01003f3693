"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider info: package, hooks, operators and the endpoint connection form."""
    return {
        "package-name": "airflow-provider-journey",
        "name": "Journey custom actions",
        "description": "Custom actions for customer journeys: one REST call per profile of an audience.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "custom_action",
                "hook-class-name": "airflow_provider_journey.hooks.custom_action.CustomActionHook",
            }
        ],
    }
