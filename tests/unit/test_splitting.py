"""ProfileRouter: condition and percentage splits."""

from __future__ import annotations

import pytest

from airflow_provider_journey.exceptions import RenderError
from airflow_provider_journey.splitting import ProfileRouter, bucket_of
from airflow_provider_journey.types import Profile


def profile(profile_id: str, **attributes) -> Profile:
    return Profile(id=profile_id, attributes=attributes, row=1)


def test_condition_first_match_wins():
    router = ProfileRouter.by_condition(
        {"vip": "profile.points > 1000", "push": "profile.push_token"}, other="email"
    )
    assert router.branch_for(profile("p1", points=5000, push_token="abc")) == "vip"


def test_condition_falls_through_to_other():
    router = ProfileRouter.by_condition({"push": "profile.push_token"}, other="email")
    assert router.branch_for(profile("p1", push_token=None)) == "email"


def test_condition_sees_earlier_action_outcomes():
    router = ProfileRouter.by_condition(
        {"retry": "actions.push_welcome.status == 'failed'"}, other="done"
    )
    failed = Profile(id="p1", attributes={}, row=1, actions={"push_welcome": {"status": "failed"}})
    assert router.branch_for(failed) == "retry"


def test_condition_typo_is_render_error_naming_branch():
    router = ProfileRouter.by_condition({"push": "profile.push_tokn"}, other="email")
    with pytest.raises(RenderError, match=r"conditions\.push"):
        router.branch_for(profile("p1", push_token="abc"))


def test_condition_syntax_error_at_construction():
    with pytest.raises(ValueError, match="condition of branch 'push'"):
        ProfileRouter.by_condition({"push": "profile.push_token =="}, other="email")


def test_other_branch_name_must_differ():
    with pytest.raises(ValueError, match="both a condition and the 'other' branch"):
        ProfileRouter.by_condition({"email": "true"}, other="email")


def test_percentages_must_add_to_100():
    with pytest.raises(ValueError, match="add up to 100"):
        ProfileRouter.by_percentage({"a": 50, "b": 40})


def test_percentage_split_is_deterministic():
    router = ProfileRouter.by_percentage({"control": 10, "treatment": 90})
    first = [router.branch_for(profile(f"p{i}")) for i in range(500)]
    second = [router.branch_for(profile(f"p{i}")) for i in range(500)]
    assert first == second


def test_percentage_split_shares_are_close():
    router = ProfileRouter.by_percentage({"control": 10, "treatment": 90})
    branches = [router.branch_for(profile(f"p{i}")) for i in range(20_000)]
    share = branches.count("control") / len(branches)
    assert 0.09 < share < 0.11


def test_salt_changes_assignment():
    salted_a = [bucket_of(f"p{i}", "a") for i in range(50)]
    salted_b = [bucket_of(f"p{i}", "b") for i in range(50)]
    assert salted_a != salted_b


def test_sandbox_blocks_unsafe_attribute():
    router = ProfileRouter.by_condition({"x": "profile.__class__.__mro__"}, other="y")
    with pytest.raises(RenderError):
        router.branch_for(profile("p1"))
