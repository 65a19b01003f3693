"""Welcome journey: greet opted-in profiles by push, or by email when push is not possible.

Read audience (SQL) -> split on push token -> push action / email action -> fallback
email for failed pushes -> summary. Connections ``journey_profiles_db`` (SQLite),
``journey_push`` and ``journey_email`` (custom_action) and the Variables
``journey_action_push_welcome`` and ``journey_action_email_welcome`` must exist;
``make demo`` sets all of them up against the local receiver.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_journey import (
    AudienceSplitOperator,
    CustomActionOperator,
    OutcomesAudience,
    SqlAudience,
)

PROFILE_MAPPING = {
    "first_name": "{{ profile.first_name }}",
    "locale": "{{ profile.locale }}",
}


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["journey", "example"],
    doc_md=__doc__,
)
def welcome_journey() -> None:
    audience = SqlAudience(
        "journey_profiles_db",
        "SELECT * FROM profiles WHERE marketing_opt_in = 1 ORDER BY profile_id",
    )

    split = AudienceSplitOperator(
        task_id="split_by_channel",
        audience=audience,
        conditions={"push": "profile.push_token"},
        other="email",
    )

    push = CustomActionOperator(
        task_id="send_welcome_push",
        action="push_welcome",
        audience=split.output["push"],
        parameters={
            **PROFILE_MAPPING,
            "token": "{{ profile.push_token }}",
            "points": "{{ profile.loyalty_points }}",
            "journey": "{{ run.journey }}",
        },
        error_rate_threshold=0.2,
    )

    email = CustomActionOperator(
        task_id="send_welcome_email",
        action="email_welcome",
        audience=split.output["email"],
        parameters={
            **PROFILE_MAPPING,
            "email": "{{ profile.email }}",
            "signup_date": "{{ profile.signup_date }}",
        },
    )

    fallback = CustomActionOperator(
        task_id="send_fallback_email",
        action="email_welcome",
        audience=OutcomesAudience(push.output, statuses=("failed", "timed_out", "capped")),
        parameters={
            **PROFILE_MAPPING,
            "email": "{{ profile.email }}",
            "signup_date": "{{ profile.signup_date }}",
            "reason": "push_{{ actions.push_welcome.status }}",
        },
        trigger_rule="all_done",
    )

    @task(trigger_rule="all_done")
    def summarize(push: dict | None, email: dict | None, fallback_email: dict | None) -> dict:
        """Log each step's outcome counts and return them with the journey's totals."""
        steps = {"push": push, "email": email, "fallback_email": fallback_email}
        report: dict = {"steps": {}, "succeeded": 0, "not_reached": 0}
        for step, summary in steps.items():
            if not summary:
                print(f"{step}: no summary (the task did not run)")
                continue
            counts = {status: count for status, count in summary["counts"].items() if count}
            print(f"{step} ({summary['action']}): {counts}; outcomes in {summary['results_uri']}")
            report["steps"][step] = counts
            report["succeeded"] += summary["counts"]["succeeded"]
        fallback = fallback_email or {"counts": {}}
        report["not_reached"] = sum(
            count for status, count in fallback["counts"].items() if status != "succeeded"
        )
        return report

    summarize(push=push.output, email=email.output, fallback_email=fallback.output)
    push >> fallback


welcome_journey()
