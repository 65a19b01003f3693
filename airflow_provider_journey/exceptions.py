"""Exceptions raised by the journey provider.

    JourneyError
    ├── ActionDefinitionError      an action document is invalid (lists every problem)
    ├── EndpointConfigError        an endpoint connection is invalid
    ├── RenderError                one profile's request could not be rendered or validated
    ├── AudienceError              an audience could not be read
    ├── TransportError             a call failed below HTTP (connection refused, reset, TLS)
    │   └── CallTimeoutError       a call did not finish within its timeout
    ├── HTTPStatusError            the endpoint answered with an error status
    └── ActionRunFailedError       a task crossed its error-rate threshold or could send nothing

Messages never contain a secret: bodies are cut to a size limit and passed through the
secret masker by the code that builds them.
"""

from __future__ import annotations

from collections.abc import Sequence


class JourneyError(Exception):
    """Base class of every error raised by this provider."""


class ActionDefinitionError(JourneyError):
    """An action definition is invalid; ``problems`` lists every problem with its field path."""

    def __init__(self, action: str, problems: Sequence[str], *, in_mapping: bool = False) -> None:
        self.action = action
        self.problems = list(problems)
        self.in_mapping = in_mapping
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        if in_mapping:
            heading = (
                f"The parameters mapping of the task that uses action {action!r} is invalid "
                f"({len(self.problems)} problem(s)); fix the task's parameters argument"
            )
        else:
            heading = (
                f"Action {action!r} is invalid ({len(self.problems)} problem(s)); "
                "fix the definition and load it again"
            )
        super().__init__(f"{heading}:\n{lines}")


class EndpointConfigError(JourneyError):
    """An endpoint connection has a missing, unknown or invalid setting."""

    def __init__(
        self,
        conn_id: str,
        problems: Sequence[str],
        *,
        not_found: bool = False,
        action: str | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.problems = list(problems)
        self.not_found = not_found
        self.action = action
        state = "was not found" if not_found else "is invalid"
        used_by = f", named in connection_id of action {action!r}," if action else ""
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"Endpoint connection {conn_id!r}{used_by} {state}:\n{lines}")


class RenderError(JourneyError):
    """One profile's request could not be rendered or validated; nothing was sent."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class AudienceError(JourneyError):
    """An audience source could not be opened or read."""


class TransportError(JourneyError):
    """A call failed below HTTP: refused or reset connection, DNS or TLS failure."""


class CallTimeoutError(TransportError):
    """A call did not complete within its timeout."""


class HTTPStatusError(JourneyError):
    """The endpoint answered with an error status; ``body`` is cut to a size limit."""

    def __init__(self, status: int, body: str, *, url: str) -> None:
        self.status = status
        self.body = body
        self.url = url
        super().__init__(f"{url} answered HTTP {status}: {body}")


class ActionRunFailedError(JourneyError):
    """An action run crossed its error-rate threshold or could not send anything."""
