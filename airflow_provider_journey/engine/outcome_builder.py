"""Outcomes of sent requests: status, status code, kept fields and a secret-free error."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_journey.engine.attempt import AttemptEnd, AttemptResult
from airflow_provider_journey.engine.auth import Authenticator, redact, redact_document
from airflow_provider_journey.engine.policy import CallPolicy
from airflow_provider_journey.engine.response import (
    FieldPath,
    compile_paths,
    error_body_excerpt,
    keep_fields,
    parse_json,
)
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest


class OutcomeBuilder:
    """Builds the outcome of each request of one action from how its last attempt ended.

    ``where`` names the endpoint (host and port) in messages. Every message passes
    through the authenticator's current secrets before it reaches the outcome.
    """

    def __init__(
        self,
        action_name: str,
        conn_id: str,
        where: str,
        policy: CallPolicy,
        authenticator: Authenticator,
    ) -> None:
        self.action_name = action_name
        self._conn_id = conn_id
        self._where = where
        self._policy = policy
        self._auth = authenticator
        self._response_fields = compile_paths(policy.keep_response_fields)
        self._error_fields = compile_paths(policy.keep_error_fields)

    def final(self, request: PreparedRequest, result: AttemptResult, attempts: int) -> Outcome:
        """Build the outcome of the last attempt of a request."""
        if result.end is AttemptEnd.RESPONSE:
            return self._response_outcome(request, result, attempts)

        outcome = self.new(request, OutcomeStatus.FAILED, "internalError", attempts)
        if result.end is AttemptEnd.TIMEOUT:
            outcome.status = OutcomeStatus.TIMED_OUT
            outcome.status_code = "timedout"
            outcome.error = (
                f"no complete response from {self._where} within the timeout of "
                f"{self._policy.timeout:g} s, after {_attempts(attempts)}; check that the endpoint "
                "is healthy, or raise the endpoint connection's timeout"
            )
        elif result.end is AttemptEnd.CONNECTION:
            outcome.error = redact(
                f"{result.message} after {_attempts(attempts)}; check that the endpoint is up "
                "and reachable from this worker",
                self._auth.secrets,
            )
        else:
            outcome.error = redact(result.message, self._auth.secrets)
        return outcome

    def _response_outcome(
        self, request: PreparedRequest, result: AttemptResult, attempts: int
    ) -> Outcome:
        status = result.status
        code = f"http_{status}"
        if 200 <= status < 300:
            outcome = self.new(request, OutcomeStatus.SUCCEEDED, code, attempts)
            outcome.response, outcome.error = self._kept_fields(result.body, self._response_fields)
        else:
            outcome = self.new(request, OutcomeStatus.FAILED, code, attempts)
            outcome.response, note = self._kept_fields(result.body, self._error_fields)
            outcome.error = self._http_error(status, result.body, attempts, note)
        outcome.http_status = status
        return outcome

    def _kept_fields(
        self, body: bytes | None, paths: tuple[FieldPath, ...]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Return the kept fields of a body and a note when they could not be kept."""
        if body is None:
            limit = self._policy.max_response_bytes
            return None, f"response body is over {limit} bytes; nothing was kept"
        if not paths:
            return None, None

        is_json, document = _parse_json_body(body)
        if not is_json:
            names = ", ".join(path.text for path in paths)
            return None, f"response is not JSON; fields not kept: {names}"
        # A server may echo the credential back in a kept field.
        return redact_document(keep_fields(document, paths), self._auth.secrets), None

    def _http_error(self, status: int, body: bytes | None, attempts: int, note: str | None) -> str:
        message = f"HTTP {status} after {_attempts(attempts)}"
        if body is None:
            return f"{message}; {note}"
        excerpt = error_body_excerpt(body, self._auth.secrets)
        if note is not None and "not JSON" in note:
            return f"{message}: {excerpt} ({note})"
        return f"{message}: {excerpt}"

    def capped(
        self, request: PreparedRequest, attempts: int, last: AttemptResult | None
    ) -> Outcome:
        outcome = self.new(request, OutcomeStatus.CAPPED, "capped", attempts)
        conn_id = self._conn_id
        if last is None:
            outcome.error = (
                f"endpoint connection {conn_id!r} is at its capping limit (capping mode "
                "'reject'); the call was not sent. Lower the audience rate or raise the limit"
            )
            return outcome

        if last.end is AttemptEnd.RESPONSE:
            outcome.http_status = last.status
            ending = f"HTTP {last.status}"
        elif last.end is AttemptEnd.TIMEOUT:
            ending = "a timeout"
        else:
            ending = "a connection error"
        outcome.error = (
            f"endpoint connection {conn_id!r} is at its capping limit (capping mode 'reject'), "
            f"so no retry was sent after {_attempts(attempts)}; the last attempt ended with "
            f"{ending}"
        )
        return outcome

    def unexpected(self, request: PreparedRequest, error: Exception) -> Outcome:
        """Build a failed outcome for an error that no branch of the engine expects."""
        detail = redact(str(error), self._auth.secrets)[:500]
        outcome = self.new(request, OutcomeStatus.FAILED, "internalError", 0)
        outcome.error = (
            f"unexpected {type(error).__name__} while sending: {detail}; "
            "this is a bug in the provider, please report it with the task log"
        )
        return outcome

    def new(
        self, request: PreparedRequest, status: OutcomeStatus, code: str, attempts: int
    ) -> Outcome:
        return Outcome(
            profile_id=request.profile_id,
            action=self.action_name,
            status=status,
            status_code=code,
            attempts=attempts,
            idempotency_key=request.idempotency_key,
        )


def _parse_json_body(body: bytes) -> tuple[bool, Any]:
    """Return what ``parse_json`` returns, without its encoding detection for the usual body.

    ``json.loads`` of bytes detects UTF-8, UTF-16 or UTF-32 from the first bytes. It
    detects UTF-8 for a body that starts with "{" or "[" and then a byte that is not
    zero, so such a body is decoded here as ``json.loads`` would decode it.
    """
    if body[:1] in (b"{", b"[") and body[1:2] != b"\x00":
        try:
            return True, json.loads(body.decode("utf-8", "surrogatepass"))
        except ValueError:
            return False, None
    return parse_json(body)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"
