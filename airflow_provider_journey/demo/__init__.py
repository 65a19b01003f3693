"""Demo data for trying journeys offline.

``airflow_provider_journey.demo.profiles`` generates deterministic customer profiles and
writes them to SQLite. This package imports nothing on its own, so that
``python -m airflow_provider_journey.demo.profiles`` runs the module only once.
"""
