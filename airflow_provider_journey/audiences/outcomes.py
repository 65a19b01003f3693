"""OutcomesAudience: the outcomes of an earlier action run as the next step's audience.

This is the error path of a journey (a fallback email after a failed push) and the way a
later step reads an earlier action's response fields (``actions.<name>.<field>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_journey.audiences.base import Audience, parse_rendered_value
from airflow_provider_journey.exceptions import AudienceError
from airflow_provider_journey.outcomes import latest_outcomes
from airflow_provider_journey.storage import to_path
from airflow_provider_journey.types import OutcomeStatus, Profile

if TYPE_CHECKING:
    import os

    from airflow.sdk import ObjectStoragePath

DEFAULT_STATUSES = (OutcomeStatus.FAILED.value, OutcomeStatus.TIMED_OUT.value)
_ALL_STATUSES = frozenset(status.value for status in OutcomeStatus)


class OutcomesAudience(Audience):
    """An audience of the profiles whose latest outcome in an earlier run has one of ``statuses``.

    Each profile carries the attributes stored with its outcome and, under
    ``actions[<action name>]``, the outcome's ``status``, ``status_code``,
    ``http_status`` and ``error`` followed by the kept response fields. A kept
    response field with one of those four names replaces the outcome's value.

    :param results: the results directory (path or URL) of the earlier run, or the
        summary that its ``CustomActionOperator`` pushed to XCom. A merged summary of
        mapped shards lists several directories in ``results_uris``. (templated)
    :param statuses: the outcome statuses to select; ``"all"`` or None selects every
        status.
    :param action: the name under which the outcome goes into ``Profile.actions``;
        by default the action named in the summary or in the outcome records.
    """

    template_fields: Sequence[str] = ("results",)

    def __init__(
        self,
        results: str | os.PathLike[str] | ObjectStoragePath | Mapping[str, Any],
        *,
        statuses: Iterable[str] | str | None = DEFAULT_STATUSES,
        action: str | None = None,
    ) -> None:
        self.results = results
        self.statuses = _parse_statuses(statuses)
        self.action = action

    def profiles(self) -> Iterator[Profile]:
        """Yield one profile per selected outcome, in the order the outcomes were written."""
        directories, summary_action = self._locate_results()
        row = 0
        for directory in directories:
            path = to_path(directory)
            if not path.exists():
                raise AudienceError(
                    f"results directory {path} of the earlier action run not found; check "
                    f"that the action task ran and wrote its outcomes there"
                )
            for record in latest_outcomes(path):
                if self.statuses is not None and record.get("status") not in self.statuses:
                    continue
                row += 1
                action = self.action or summary_action or str(record.get("action") or "action")
                yield _profile_from_record(record, action=action, row=row, where=str(path))

    def _locate_results(self) -> tuple[list[Any], str | None]:
        results: Any = self.results
        if isinstance(results, str) and results.lstrip().startswith("{"):
            results = parse_rendered_value(results, description="the outcomes audience's results")
        if not isinstance(results, Mapping):
            return [results], None

        action = results.get("action")
        uris = results.get("results_uris") or [results.get("results_uri")]
        if not all(isinstance(uri, str) and uri for uri in uris):
            raise AudienceError(
                f"the summary given as results of action {action!r} has no results_uri; "
                f"pass the summary that the action task pushed to XCom, or its results URI"
            )
        return list(uris), action if isinstance(action, str) else None


def _parse_statuses(statuses: Iterable[str] | str | None) -> frozenset[str] | None:
    if statuses is None or statuses == "all":
        return None
    if isinstance(statuses, str):
        statuses = [statuses]
    chosen = frozenset(str(getattr(status, "value", status)) for status in statuses)
    unknown = sorted(chosen - _ALL_STATUSES)
    if unknown:
        raise AudienceError(
            f"unknown outcome status(es) {', '.join(unknown)}; use "
            f"{', '.join(sorted(_ALL_STATUSES))} or 'all'"
        )
    return chosen


def _profile_from_record(
    record: Mapping[str, Any], *, action: str, row: int, where: str
) -> Profile:
    outcome: dict[str, Any] = {
        "status": record.get("status"),
        "status_code": record.get("status_code"),
        "http_status": record.get("http_status"),
        "error": record.get("error"),
    }
    response = record.get("response")
    if isinstance(response, Mapping):
        outcome.update(response)
    elif response is not None:
        outcome["response"] = response
    attributes = record.get("profile") or {}
    profile_id = record.get("profile_id")
    if profile_id is None:
        return Profile(
            id=None,
            attributes=attributes,
            row=row,
            actions={action: outcome},
            error=(
                f"the outcome at row {record.get('row')} of the earlier run in {where} has no "
                f"profile id, so it cannot enter the next step"
            ),
        )
    return Profile(id=str(profile_id), attributes=attributes, row=row, actions={action: outcome})
