"""CustomActionOperator: call a custom action once for every profile of an audience."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from airflow.sdk import BaseOperator

from airflow_provider_journey.actions import ActionDefinition
from airflow_provider_journey.audiences import Audience
from airflow_provider_journey.exceptions import EndpointConfigError
from airflow_provider_journey.hooks.custom_action import CustomActionHook
from airflow_provider_journey.loading import load_action
from airflow_provider_journey.operators._inputs import (
    depend_on_nested_xcoms,
    results_directory,
    to_audience,
)
from airflow_provider_journey.operators._rendering import renders_unchanged
from airflow_provider_journey.runner import RunIdentity, RunOptions, check_run_failure, run_action
from airflow_provider_journey.sharding import ShardedAudience


class CustomActionOperator(BaseOperator):
    """Call a custom action for every profile of an audience and record one outcome per profile.

    The audience is streamed, requests are sent with bounded concurrency through the
    endpoint connection's capping, with retries and an ``Idempotency-Key`` per profile.
    Each outcome is written to a JSONL file under ``results_base`` as it completes; the
    task returns a small summary (pushed to XCom). A retried task skips profiles that
    already have a final outcome.

    :param action: the action: the name of an Airflow Variable ``journey_action_<name>``
        holding its JSON, a path to a ``.json`` file, an inline dict, or an ActionDefinition.
    :param audience: the profiles (templated): an Audience (SqlAudience, FileAudience,
        OutcomesAudience, ListAudience), a list of dicts, a file path, or the XCom of a
        split branch (a dict with ``uri``).
    :param parameters: maps the action's parameters onto profile data, such as
        ``{"token": "{{ profile.push_token }}"}``. Rendered per profile by this operator,
        not by Airflow: the templates see ``profile``, ``profile_id``, ``actions`` (outcomes
        of earlier actions for this profile) and ``run`` (dag_id, run_id, task_id,
        map_index, logical_date, ds, journey).
    :param id_field: name of the profile id attribute, for audiences given as a list or path.
    :param results_base: where result files go (templated); a local path or an
        ObjectStoragePath URI. Default: the ``[journey] results_base`` setting, else
        ``$AIRFLOW_HOME/journey-results``.
    :param journey: name of the journey, available as ``run.journey``; default the DAG id.
    :param concurrency: maximum calls in flight in this task.
    :param error_rate_threshold: share (0 to 1) of attempted calls that may end failed,
        timed out or capped, and separately of profiles that may be invalid, before the
        task fails.
    :param progress_interval: seconds between progress log lines.
    :param keep_profile: store each profile's attributes in its outcome, so a later step
        can use the outcomes as its audience (the error path).
    :param shard: send only the profiles of this shard (0 to ``shard_count - 1``), chosen
        by a hash of the profile id; map over ``sharding.shard_numbers(shard_count)`` with
        ``.expand(shard=...)``. Default: no sharding, every profile.
    :param shard_count: number of shards the audience is split into.
    """

    template_fields: Sequence[str] = ("audience", "results_base", "journey")
    ui_color = "#e8f4f8"

    def __init__(
        self,
        *,
        action: str | Mapping[str, Any] | ActionDefinition,
        audience: Any,
        parameters: Mapping[str, Any],
        id_field: str = "profile_id",
        results_base: str | None = None,
        journey: str | None = None,
        concurrency: int = 64,
        error_rate_threshold: float = 0.1,
        progress_interval: float = 10.0,
        keep_profile: bool = True,
        shard: int | None = None,
        shard_count: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if concurrency < 1:
            raise ValueError(f"{self.task_id}: concurrency must be 1 or more, got {concurrency}")
        if not 0 <= error_rate_threshold <= 1:
            raise ValueError(
                f"{self.task_id}: error_rate_threshold is a share between 0 and 1, "
                f"got {error_rate_threshold}"
            )
        self.action = action
        self.audience = audience
        self.parameters = dict(parameters)
        self.id_field = id_field
        self.results_base = results_base
        self.journey = journey
        self.shard = shard
        self.shard_count = shard_count
        self.options = RunOptions(
            concurrency=concurrency,
            error_rate_threshold=error_rate_threshold,
            progress_interval=progress_interval,
            keep_profile=keep_profile,
        )
        depend_on_nested_xcoms(self, audience)

    def render_template(
        self,
        content: Any,
        context: Any,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Render a template field value as Airflow does, returning plain strings without Jinja.

        Airflow compiles every string of a template field as a Jinja template, and an
        inline audience of 1,000 profiles contains about 5,000 strings. A string without
        template syntax renders to itself, so it is returned as it is. Airflow renders
        the items of lists and dicts through this method, so they get the same shortcut.
        Any other value goes through Airflow's rendering.
        """
        if (
            isinstance(content, str)
            and jinja_env is not None
            and not content.endswith(tuple(self.template_ext))
            and renders_unchanged(content, jinja_env)
            and not self._should_render_native(self.get_dag())
        ):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def execute(self, context: Any) -> dict[str, Any]:
        definition = load_action(self.action)
        try:
            settings = CustomActionHook(definition.connection_id).settings
        except EndpointConfigError as error:
            raise EndpointConfigError(
                error.conn_id, error.problems, not_found=error.not_found, action=definition.name
            ) from None
        audience: Audience = to_audience(self.audience, id_field=self.id_field)
        if self.shard is not None:
            audience = ShardedAudience(audience, self.shard, self.shard_count)
        ti = context["ti"]
        identity = RunIdentity(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=ti.map_index if ti.map_index is not None else -1,
            try_number=ti.try_number or 1,
        )
        results_dir = self._results_dir(identity, definition.name)
        self.log.info("Action %s: outcomes go to %s", definition.name, results_dir)

        summary = run_action(
            definition,
            settings,
            audience,
            self.parameters,
            identity=identity,
            run_context=_run_context(context, identity, self.journey),
            results_dir=results_dir,
            options=self.options,
        )
        if self.shard is not None:
            summary["shard"] = self.shard
            summary["shard_count"] = self.shard_count
        self.log.info(
            "Action %s summary: %s; status codes %s; latency %s ms; %s calls/s; outcomes in %s",
            definition.name,
            {status: count for status, count in summary["counts"].items() if count},
            summary["status_codes"],
            summary["latency_ms"],
            summary["throughput"],
            summary["results_uri"],
        )

        # Push before the threshold check so a failed task still shows what happened.
        ti.xcom_push(key="return_value", value=summary)
        check_run_failure(definition.name, summary, self.options)
        return summary

    def _results_dir(self, identity: RunIdentity, action_name: str) -> Any:
        parts = [identity.dag_id, identity.run_id, identity.task_id]
        if identity.map_index >= 0:
            parts.append(f"map-{identity.map_index}")
        return results_directory(self.results_base, *parts, action_name)


def _run_context(context: Any, identity: RunIdentity, journey: str | None) -> dict[str, Any]:
    logical_date = context.get("logical_date")
    return {
        "dag_id": identity.dag_id,
        "run_id": identity.run_id,
        "task_id": identity.task_id,
        "map_index": identity.map_index,
        "logical_date": logical_date.isoformat() if logical_date else None,
        "ds": context.get("ds"),
        "journey": journey or identity.dag_id,
    }
