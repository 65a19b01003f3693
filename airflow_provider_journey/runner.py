"""Run one action over an audience: render, send, record an outcome per profile, summarise.

This module joins the Airflow-free parts (audience, templating, engine, outcome store,
summary); the operator only builds its inputs from Airflow and logs its result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_journey.actions import ActionDefinition
from airflow_provider_journey.audiences import Audience
from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine import CallPolicy, Sender, limiter_for
from airflow_provider_journey.exceptions import ActionRunFailedError, RenderError
from airflow_provider_journey.outcomes import OutcomeWriter, final_profile_ids
from airflow_provider_journey.summary import SummaryBuilder
from airflow_provider_journey.templating import ActionRenderer, ParameterMapping
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest, Profile

log = logging.getLogger(__name__)

# Unsuccessful outcomes logged one by one per run; later ones only count in progress lines.
MAX_LOGGED_ERRORS = 10


@dataclass(frozen=True)
class RunOptions:
    """Settings of one action run, with the defaults a DAG author gets.

    ``error_rate_threshold`` is the share (0 to 1) of attempted calls that may end
    failed, timed out or capped, and separately the share of profiles that may be
    invalid, before the task fails. ``progress_interval`` is in seconds.
    """

    concurrency: int = 64
    error_rate_threshold: float = 0.1
    progress_interval: float = 10.0
    keep_profile: bool = True


@dataclass(frozen=True)
class RunIdentity:
    """The ids that make an action run unique; they form the idempotency key namespace."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1

    @property
    def key_namespace(self) -> str:
        """Return the idempotency key namespace: the same for every try of one task instance."""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}/{self.map_index}"


def run_action(
    action: ActionDefinition,
    settings: EndpointSettings,
    audience: Audience,
    parameters: Mapping[str, Any],
    *,
    identity: RunIdentity,
    run_context: Mapping[str, Any],
    results_dir: Any,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Send the action for every profile of the audience and return the run summary.

    The caller decides with ``check_run_failure`` whether the run failed.
    """
    options = options or RunOptions()
    mapping = ParameterMapping(action, parameters)
    renderer = ActionRenderer(action, key_namespace=identity.key_namespace)
    summary = SummaryBuilder(action.name, str(results_dir))
    already_done = final_profile_ids(results_dir)
    if already_done:
        log.info(
            "Action %s: %d profiles already have a final outcome from an earlier try; "
            "they are skipped and not sent again.",
            action.name,
            len(already_done),
        )

    with OutcomeWriter(results_dir, try_number=identity.try_number) as writer:
        job = _ActionJob(
            action, mapping, renderer, summary, writer, already_done, run_context, options
        )
        asyncio.run(job.run(settings, audience, _call_policy(action, settings)))

    return summary.to_dict()


def _call_policy(action: ActionDefinition, settings: EndpointSettings) -> CallPolicy:
    """Return the call policy: the action's overrides on top of the connection's settings."""
    overrides: dict[str, Any] = {
        "timeout": action.timeout_seconds or settings.timeout,
        "keep_response_fields": tuple(action.response_fields),
        "keep_error_fields": tuple(action.error_response_fields),
    }
    if action.max_retries is not None:
        overrides["max_retries"] = action.max_retries
    if action.max_response_bytes is not None:
        overrides["max_response_bytes"] = action.max_response_bytes
    return CallPolicy(**overrides)


class _ActionJob:
    """State of one action run while it streams: counts, writer, progress."""

    def __init__(
        self,
        action: ActionDefinition,
        mapping: ParameterMapping,
        renderer: ActionRenderer,
        summary: SummaryBuilder,
        writer: OutcomeWriter,
        already_done: set[str],
        run_context: Mapping[str, Any],
        options: RunOptions,
    ) -> None:
        self.action = action
        self.mapping = mapping
        self.renderer = renderer
        self.summary = summary
        self.writer = writer
        self.already_done = already_done
        self.run_context = run_context
        self.options = options
        self.done = 0
        self.errors_logged = 0
        self.clock = UtcClock()
        self.by_status: dict[str, int] = {}
        self.started = time.monotonic()

    async def run(self, settings: EndpointSettings, audience: Audience, policy: CallPolicy) -> None:
        log.info(
            "Action %s: sending %s %s%s for each profile (concurrency %d, timeout %.0f s, "
            "capping %d calls per %.0f s, %s).",
            self.action.name,
            self.action.method,
            settings.base_url,
            self.action.path,
            self.options.concurrency,
            policy.timeout,
            settings.calls_per_period,
            settings.period_seconds,
            settings.capping_mode,
        )
        async with Sender(
            settings,
            self.action.name,
            policy,
            concurrency=self.options.concurrency,
            limiter=limiter_for(settings),
        ) as sender:
            progress = asyncio.ensure_future(self._log_progress(sender))
            try:
                await sender.send_all(self._requests(audience), self._record)
            finally:
                progress.cancel()
        self._log_line(sender, final=True)

    def _requests(self, audience: Audience) -> Iterator[tuple[PreparedRequest, Profile]]:
        """Yield a request per sendable profile; record invalid and skipped profiles directly."""
        for profile in audience.profiles():
            if profile.id is not None and profile.id in self.already_done:
                self._count(OutcomeStatus.SKIPPED.value)
                self.summary.add(Outcome(profile.id, self.action.name, OutcomeStatus.SKIPPED))
                continue
            request = self._render(profile)
            if request is not None:
                yield request, profile

    def _render(self, profile: Profile) -> PreparedRequest | None:
        problem = _profile_problem(profile)
        if problem is None:
            try:
                values = self.mapping.evaluate(profile, self.run_context)
                return self.renderer.render(str(profile.id), values)
            except RenderError as error:
                problem = f"profile {profile.id}: {error}; nothing was sent"
        outcome = Outcome(
            profile_id=profile.id,
            action=self.action.name,
            status=OutcomeStatus.INVALID,
            error=problem,
            row=profile.row,
        )
        self._record(outcome, profile)
        return None

    def _record(self, outcome: Outcome, profile: Profile) -> None:
        """Write one final outcome as soon as it is known, and count it."""
        outcome.row = profile.row
        outcome.finished_at = self.clock.now_iso()
        if self.options.keep_profile:
            outcome.profile = profile.attributes
        self.writer.write(outcome)
        self.summary.add(outcome)
        self._count(outcome.status.value)
        if outcome.status is not OutcomeStatus.SUCCEEDED:
            self._log_error(outcome)

    def _log_error(self, outcome: Outcome) -> None:
        """Log the first few unsuccessful outcomes; the rest are counted in progress lines."""
        self.errors_logged += 1
        if self.errors_logged > MAX_LOGGED_ERRORS:
            return
        log.warning(
            "Action %s, profile %s (row %s): %s (%s): %s",
            self.action.name,
            outcome.profile_id,
            outcome.row,
            outcome.status.value,
            outcome.status_code or "not sent",
            outcome.error,
        )
        if self.errors_logged == MAX_LOGGED_ERRORS:
            log.warning(
                "Action %s: further unsuccessful profiles are counted, not logged; every "
                "outcome is in the results.",
                self.action.name,
            )

    def _count(self, status: str) -> None:
        self.done += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1

    async def _log_progress(self, sender: Sender) -> None:
        while True:
            await asyncio.sleep(self.options.progress_interval)
            self._log_line(sender, final=False)

    def _log_line(self, sender: Sender, *, final: bool) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        counts = ", ".join(f"{status} {count}" for status, count in sorted(self.by_status.items()))
        retries = getattr(sender.counters, "retries", {}) or {}
        retry_text = ", ".join(f"{reason} {count}" for reason, count in sorted(retries.items()))
        log.info(
            "Action %s %s: profiles done %d in %.1f s (%.0f/s): %s; retries: %s.",
            self.action.name,
            "finished" if final else "progress",
            self.done,
            elapsed,
            self.done / elapsed,
            counts or "none yet",
            retry_text or "none",
        )


class UtcClock:
    """Clock of outcome times: ISO 8601 text as ``datetime.now(timezone.utc).isoformat()``.

    The date and the time down to the second are formatted once per second, and only
    the microseconds per call, because an outcome is stamped for every profile.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._prefix = ""

    def now_iso(self) -> str:
        """Return the current time, such as ``2026-12-04T21:35:41.123456+00:00``."""
        return self.format(time.time_ns())

    def format(self, nanoseconds: int) -> str:
        """Format a time in nanoseconds since the epoch, to the microsecond, rounding down.

        CPython's ``datetime.now`` also rounds the system clock down to the
        microsecond. As in ``isoformat``, a time on a whole second has no fraction.
        """
        second, rest = divmod(nanoseconds, 1_000_000_000)
        if second != self._second:
            whole = dt.datetime.fromtimestamp(second, dt.timezone.utc).isoformat()
            self._prefix = whole.removesuffix("+00:00")
            self._second = second
        microsecond = rest // 1000
        if microsecond:
            return f"{self._prefix}.{microsecond:06d}+00:00"
        return f"{self._prefix}+00:00"


def _profile_problem(profile: Profile) -> str | None:
    """Return why a profile cannot be sent before rendering, or None."""
    if profile.error:
        return profile.error
    if profile.id is None or profile.id == "":
        return (
            f"row {profile.row}: the profile has no id; set id_field to the column that "
            "holds the profile id"
        )
    return None


def _no_success_hint(status_codes: Mapping[str, int]) -> str:
    """Return what to check when no call succeeded, from how the calls ended."""
    answered = {code for code in status_codes if code.startswith("http_")}
    if answered <= {"http_401", "http_403"} and answered:
        return "The endpoint rejected the credentials: check the connection's authentication."
    if answered:
        return (
            "The endpoint answered every call with an error: check the action's path and "
            "payload against the endpoint's API, and the errors in the outcomes."
        )
    return (
        "No call reached the endpoint: check that it is up and reachable from this "
        "worker, and the connection's base URL."
    )


def check_run_failure(action_name: str, summary: Mapping[str, Any], options: RunOptions) -> None:
    """Raise ActionRunFailedError when the run crossed the threshold or no call succeeded.

    The run fails in three cases. Calls were attempted and not one succeeded. The
    summary's ``error_rate`` (failed, timed out or capped calls per attempted call) is
    above the threshold. Or the share of invalid profiles is above the same threshold,
    which points at a mapping or data problem.
    """
    counts: Mapping[str, int] = summary["counts"]
    invalid = counts.get(OutcomeStatus.INVALID.value, 0)
    processed = sum(counts.values()) - counts.get(OutcomeStatus.SKIPPED.value, 0)
    attempted = processed - invalid
    results = summary.get("results_uri")
    threshold = options.error_rate_threshold

    if attempted > 0 and counts.get(OutcomeStatus.SUCCEEDED.value, 0) == 0:
        codes: Mapping[str, int] = summary.get("status_codes") or {}
        raise ActionRunFailedError(
            f"Action {action_name}: no call succeeded: all {attempted} attempted calls "
            f"failed (by status code: {dict(codes)}). {_no_success_hint(codes)} "
            f"Outcomes are in {results}."
        )
    if summary["error_rate"] > threshold:
        raise ActionRunFailedError(
            f"Action {action_name}: error rate {summary['error_rate']:.1%} of {attempted} "
            f"attempted calls (failed, timed out or capped) is above error_rate_threshold "
            f"{threshold:.1%}. Outcomes are in {results}; raise the threshold if this rate "
            "is expected."
        )
    if processed and invalid / processed > threshold:
        raise ActionRunFailedError(
            f"Action {action_name}: {invalid} of {processed} profiles are invalid "
            f"({invalid / processed:.1%}, above error_rate_threshold {threshold:.1%}); "
            f"nothing was sent for them. The first errors are in the log above and all "
            f"are in the outcomes under {results}; check the parameters mapping and the "
            "audience data."
        )
