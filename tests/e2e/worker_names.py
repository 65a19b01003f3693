"""Airflow ``hostname_callable`` for the Celery test: each worker reports its own name.

Both workers run on one machine, so the default hostname cannot tell them apart.
"""

import os


def worker_name() -> str:
    """Return the name the test gave this worker process."""
    return os.environ["JOURNEY_TEST_WORKER_NAME"]
