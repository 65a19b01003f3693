"""Audience readers: each yields the profiles of one source as a stream.

``ListAudience`` (records in memory or from XCom), ``FileAudience`` (CSV or JSONL,
local or object storage), ``SqlAudience`` (any common-sql connection) and
``OutcomesAudience`` (the outcomes of an earlier action run).
"""

from airflow_provider_journey.audiences.base import Audience, ListAudience
from airflow_provider_journey.audiences.files import FileAudience
from airflow_provider_journey.audiences.outcomes import OutcomesAudience
from airflow_provider_journey.audiences.sql import SqlAudience

__all__ = ["Audience", "FileAudience", "ListAudience", "OutcomesAudience", "SqlAudience"]
