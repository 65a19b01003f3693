"""AudienceSplitOperator: split an audience into named branches, each written as a file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_journey.exceptions import RenderError
from airflow_provider_journey.operators._inputs import (
    depend_on_nested_xcoms,
    results_directory,
    to_audience,
)
from airflow_provider_journey.splitting import ProfileRouter

INVALID_BRANCH = "_invalid"


class AudienceSplitOperator(BaseOperator):
    """Route each profile of an audience to one branch and write each branch as a JSONL audience.

    Give either ``conditions`` (first match wins, the rest go to ``other``) or
    ``percentages`` (deterministic by profile id). Each branch's location is pushed to
    XCom under the branch name, so ``split.output["push"]`` is the audience of the push
    action. The return value maps every branch to ``{"uri", "count", "id_field"}``.
    Profiles without an id, or whose condition cannot be evaluated, go to the
    ``_invalid`` branch and are counted in the log.

    :param audience: the profiles to split (templated); see CustomActionOperator.
    :param conditions: branch name to Jinja expression over ``profile``, such as
        ``{"push": "profile.push_token is not none"}``; checked in order.
    :param other: branch of profiles that match no condition.
    :param percentages: branch name to share of profiles (adding up to 100).
    :param salt: changes the percentage assignment, for a new experiment.
    :param id_field: name of the profile id attribute.
    :param results_base: where branch files go (templated); see CustomActionOperator.
    """

    template_fields: Sequence[str] = ("audience", "results_base")
    ui_color = "#f8f0e8"

    def __init__(
        self,
        *,
        audience: Any,
        conditions: Mapping[str, str] | None = None,
        other: str = "other",
        percentages: Mapping[str, float] | None = None,
        salt: str = "",
        id_field: str = "profile_id",
        results_base: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (conditions is None) == (percentages is None):
            raise ValueError(f"{self.task_id}: give either conditions or percentages, not both")
        self.audience = audience
        self.conditions = dict(conditions or {})
        self.other = other
        self.percentages = dict(percentages or {})
        self.salt = salt
        self.id_field = id_field
        self.results_base = results_base
        self.router = (
            ProfileRouter.by_condition(self.conditions, other=other)
            if conditions is not None
            else ProfileRouter.by_percentage(self.percentages, salt=salt)
        )
        depend_on_nested_xcoms(self, audience)

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        directory = results_directory(
            self.results_base, ti.dag_id, ti.run_id, ti.task_id, "branches"
        )
        directory.mkdir(parents=True, exist_ok=True)

        names = [*self.router.branch_names, INVALID_BRANCH]
        files = {name: (directory / f"{name}.jsonl").open("w", encoding="utf-8") for name in names}
        counts = dict.fromkeys(names, 0)
        try:
            for profile in to_audience(self.audience, id_field=self.id_field).profiles():
                branch = self._branch(profile)
                record = dict(profile.attributes)
                record.setdefault(self.id_field, profile.id)
                files[branch].write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                counts[branch] += 1
        finally:
            for handle in files.values():
                handle.close()

        result = {
            name: {
                "uri": str(directory / f"{name}.jsonl"),
                "count": counts[name],
                "id_field": self.id_field,
            }
            for name in names
        }
        for name in names:
            ti.xcom_push(key=name, value=result[name])
        self.log.info("Split into branches: %s", {name: counts[name] for name in names})
        if counts[INVALID_BRANCH]:
            self.log.warning(
                "%d profiles had no id or a condition that could not be evaluated; they are in %s",
                counts[INVALID_BRANCH],
                result[INVALID_BRANCH]["uri"],
            )
        return result

    def _branch(self, profile: Any) -> str:
        if profile.id is None or getattr(profile, "error", None):
            return INVALID_BRANCH
        try:
            return self.router.branch_for(profile)
        except RenderError as error:
            self.log.warning("Profile %s (row %d): %s", profile.id, profile.row, error)
            return INVALID_BRANCH
