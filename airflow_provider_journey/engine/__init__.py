"""The sending engine: asyncio with its own HTTP/1.1 client and aiohttp, and no Airflow import.

It sends prepared requests to an endpoint with capping, retries and timeouts, and
turns each into exactly one outcome.
"""

from airflow_provider_journey.engine.capping import (
    InMemorySlidingWindowLimiter,
    Limiter,
    limiter_for,
)
from airflow_provider_journey.engine.policy import CallPolicy
from airflow_provider_journey.engine.sender import SendCounters, Sender

__all__ = [
    "CallPolicy",
    "InMemorySlidingWindowLimiter",
    "Limiter",
    "SendCounters",
    "Sender",
    "limiter_for",
]
