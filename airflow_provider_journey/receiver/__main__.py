"""Run ``python -m airflow_provider_journey.receiver``, the same as ``journey-receiver``."""

from __future__ import annotations

import sys

from airflow_provider_journey.receiver.cli import main

sys.exit(main())
