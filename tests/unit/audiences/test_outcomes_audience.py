"""OutcomesAudience: an earlier action run's outcomes, filtered by status, as the next audience."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_journey.audiences import OutcomesAudience
from airflow_provider_journey.exceptions import AudienceError
from airflow_provider_journey.outcomes import OutcomeWriter
from airflow_provider_journey.summary import SummaryBuilder, merge_summaries
from airflow_provider_journey.types import Outcome, OutcomeStatus


def push_outcome(profile_id: str | None, status: OutcomeStatus, **fields: object) -> Outcome:
    return Outcome(  # type: ignore[arg-type]
        profile_id=profile_id,
        action="push",
        status=status,
        profile={"email": f"{profile_id}@example.com"},
        **fields,
    )


@pytest.fixture
def push_results(tmp_path: Path) -> Path:
    """A push run over five profiles, retried once: a try-2 part finishes the run."""
    directory = tmp_path / "results" / "push"
    with OutcomeWriter(directory, try_number=1) as writer:
        writer.write(
            push_outcome(
                "a",
                OutcomeStatus.SUCCEEDED,
                status_code="http_200",
                http_status=200,
                response={"message_id": "m-1"},
            )
        )
        writer.write(
            push_outcome(
                "b",
                OutcomeStatus.FAILED,
                status_code="http_500",
                http_status=500,
                error="HTTP 500 after 4 attempts",
                response={"code": "E42"},
            )
        )
    with OutcomeWriter(directory, try_number=2) as writer:
        writer.write(push_outcome("a", OutcomeStatus.SKIPPED))
        writer.write(push_outcome("b", OutcomeStatus.SKIPPED))
        writer.write(
            push_outcome("c", OutcomeStatus.TIMED_OUT, status_code="timedout", error="30 s")
        )
        writer.write(push_outcome("d", OutcomeStatus.CAPPED, status_code="capped"))
        writer.write(push_outcome(None, OutcomeStatus.INVALID, row=5, error="no id"))
    return directory


def test_outcomes_default_selects_failed_and_timed_out(push_results: Path) -> None:
    audience = OutcomesAudience(str(push_results))

    ids = [profile.id for profile in audience.profiles()]

    assert ids == ["b", "c"]


def test_outcomes_profile_carries_outcome_and_response(push_results: Path) -> None:
    audience = OutcomesAudience(push_results)

    failed = next(audience.profiles())

    assert failed.attributes == {"email": "b@example.com"}
    assert failed.row == 1
    assert failed.actions == {
        "push": {
            "status": "failed",
            "status_code": "http_500",
            "http_status": 500,
            "error": "HTTP 500 after 4 attempts",
            "code": "E42",
        }
    }


def test_outcomes_select_by_given_statuses(push_results: Path) -> None:
    audience = OutcomesAudience(push_results, statuses=["succeeded", "capped"])

    ids = [profile.id for profile in audience.profiles()]

    assert ids == ["a", "d"]


def test_outcomes_single_status_string(push_results: Path) -> None:
    audience = OutcomesAudience(push_results, statuses="succeeded")

    profile = next(audience.profiles())

    assert profile.actions["push"]["message_id"] == "m-1"


def test_outcomes_all_statuses_use_latest_per_profile(push_results: Path) -> None:
    audience = OutcomesAudience(push_results, statuses="all")

    statuses = [(profile.id, profile.actions["push"]["status"]) for profile in audience.profiles()]

    assert statuses == [
        ("a", "succeeded"),
        ("b", "failed"),
        ("c", "timed_out"),
        ("d", "capped"),
        (None, "invalid"),
    ]


def test_outcomes_record_without_id_is_invalid_profile(push_results: Path) -> None:
    audience = OutcomesAudience(push_results, statuses=[OutcomeStatus.INVALID])

    profile = next(audience.profiles())

    assert profile.id is None
    assert "row 5" in (profile.error or "")


def test_outcomes_from_summary_dict(push_results: Path) -> None:
    builder = SummaryBuilder("push", str(push_results))
    audience = OutcomesAudience(builder.to_dict(), action="push_fallback")

    profiles = list(audience.profiles())

    assert [profile.id for profile in profiles] == ["b", "c"]
    assert list(profiles[0].actions) == ["push_fallback"]


def test_outcomes_from_summary_rendered_to_string(push_results: Path) -> None:
    summary = SummaryBuilder("push", str(push_results)).to_dict()

    audience = OutcomesAudience(repr(summary))

    assert [profile.id for profile in audience.profiles()] == ["b", "c"]


def test_outcomes_action_name_comes_from_summary(push_results: Path) -> None:
    summary = SummaryBuilder("mobile_push", str(push_results)).to_dict()

    profile = next(OutcomesAudience(summary).profiles())

    assert list(profile.actions) == ["mobile_push"]


def test_outcomes_from_merged_shard_summary(tmp_path: Path) -> None:
    summaries = []
    for shard in range(2):
        directory = tmp_path / f"map-{shard}" / "push"
        with OutcomeWriter(directory, try_number=1) as writer:
            writer.write(push_outcome(f"s{shard}", OutcomeStatus.FAILED))
            writer.write(push_outcome(f"ok{shard}", OutcomeStatus.SUCCEEDED))
        summaries.append(SummaryBuilder("push", str(directory)).to_dict())

    audience = OutcomesAudience(merge_summaries(summaries))

    assert [profile.id for profile in audience.profiles()] == ["s0", "s1"]


def test_outcomes_from_object_storage_url(push_results: Path) -> None:
    audience = OutcomesAudience(f"file://{push_results}")

    assert [profile.id for profile in audience.profiles()] == ["b", "c"]


def test_outcomes_missing_directory_raises(tmp_path: Path) -> None:
    audience = OutcomesAudience(tmp_path / "never-written")

    with pytest.raises(AudienceError, match="never-written of the earlier action run not found"):
        list(audience.profiles())


def test_outcomes_summary_without_uri_raises() -> None:
    audience = OutcomesAudience({"action": "push", "counts": {}})

    with pytest.raises(AudienceError, match="has no results_uri"):
        list(audience.profiles())


def test_outcomes_unknown_status_raises() -> None:
    with pytest.raises(AudienceError, match="unknown outcome status"):
        OutcomesAudience("/tmp/results", statuses=["failed", "bounced"])
