"""A local receiver that stands in for push, email and other JSON services.

It listens on 127.0.0.1 only, checks the shape of each request, responds with success or
with errors and delays set by rules, and records every request without credentials.
``Receiver`` runs it in a background thread for tests and demos. ``main`` is the
``journey-receiver`` command. Nothing here imports Airflow.
"""

from __future__ import annotations

from airflow_provider_journey.receiver.app import create_app
from airflow_provider_journey.receiver.cli import main
from airflow_provider_journey.receiver.rules import ResponseRule, RuleError, parse_rule
from airflow_provider_journey.receiver.server import Receiver
from airflow_provider_journey.receiver.state import ReceiverConfig, ReceiverState

__all__ = [
    "Receiver",
    "ReceiverConfig",
    "ReceiverState",
    "ResponseRule",
    "RuleError",
    "create_app",
    "main",
    "parse_rule",
]
