"""Route each profile of an audience to one named branch: by condition or by percentage.

Conditions are Jinja expressions over ``profile``, ``profile_id`` and ``actions``,
checked in order; the first true one wins and profiles that match none go to the
``other`` branch. A percentage split puts each profile in a bucket derived from a hash
of its id, so the same profile always lands in the same branch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airflow_provider_journey.exceptions import RenderError
from airflow_provider_journey.types import Profile

BUCKETS = 10_000


class ProfileRouter:
    """Choose a branch name for each profile; build with ``by_condition`` or ``by_percentage``."""

    def __init__(self, choose: Callable[[Profile], str], branch_names: list[str]) -> None:
        self._choose = choose
        self.branch_names = branch_names

    def branch_for(self, profile: Profile) -> str:
        """Return the branch name for one profile; raise RenderError if a condition fails."""
        return self._choose(profile)

    @classmethod
    def by_condition(cls, conditions: Mapping[str, str], *, other: str) -> ProfileRouter:
        """Route by the first true condition; ``other`` takes profiles that match none."""
        if other in conditions:
            raise ValueError(f"branch {other!r} is both a condition and the 'other' branch")
        environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
        compiled = []
        for name, expression in conditions.items():
            try:
                compiled.append(
                    (name, environment.compile_expression(expression, undefined_to_none=False))
                )
            except TemplateSyntaxError as error:
                raise ValueError(f"condition of branch {name!r}: {error.message}") from None

        def choose(profile: Profile) -> str:
            context = _context(profile)
            for name, test in compiled:
                try:
                    if test(**context):
                        return name
                except (UndefinedError, SecurityError, TypeError, ValueError) as error:
                    raise RenderError(str(error), field=f"conditions.{name}") from None
            return other

        return cls(choose, [*conditions, other])

    @classmethod
    def by_percentage(cls, percentages: Mapping[str, float], *, salt: str = "") -> ProfileRouter:
        """Route by share of profiles; the shares must add up to 100.

        ``salt`` changes which profiles land where, for a new experiment on the same audience.
        """
        total = sum(percentages.values())
        if any(share < 0 for share in percentages.values()) or abs(total - 100) > 1e-9:
            raise ValueError(f"percentages must be 0 or more and add up to 100, got {total:g}")
        bounds: list[tuple[int, str]] = []
        running = 0.0
        for name, share in percentages.items():
            running += share
            bounds.append((round(running * BUCKETS / 100), name))

        def choose(profile: Profile) -> str:
            bucket = bucket_of(str(profile.id), salt)
            for bound, name in bounds:
                if bucket < bound:
                    return name
            return bounds[-1][1]

        return cls(choose, list(percentages))


def bucket_of(profile_id: str, salt: str = "") -> int:
    """Return a stable bucket in [0, 10000) for a profile id."""
    digest = hashlib.sha256(f"{salt}\x00{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def _context(profile: Profile) -> dict[str, Any]:
    attributes = dict(profile.attributes)
    attributes.setdefault("id", profile.id)
    return {"profile": attributes, "profile_id": profile.id, "actions": profile.actions}
