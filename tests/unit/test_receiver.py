"""Tests of the local receiver, run against a real server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_journey.receiver import Receiver, ResponseRule, RuleError, main, parse_rule

GOOD_PUSH = {"token": "device-token-1", "message": {"title": "Hi", "body": "Your order shipped"}}
GOOD_EMAIL = {"to": "zoe@example.nl", "subject": "Welcome", "template": "welcome-v2"}


def send(
    url: str,
    body: Any = None,
    *,
    method: str = "POST",
    key: str | None = "key-1",
    headers: Mapping[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Mapping[str, str], Any]:
    """Send one request and return status, headers and the parsed JSON body."""
    all_headers = {"Content-Type": "application/json"}
    if key is not None:
        all_headers["Idempotency-Key"] = key
    all_headers.update(headers or {})
    data = raw
    if data is None and body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), _json_or_none(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), _json_or_none(error.read())


def _json_or_none(payload: bytes) -> Any:
    return json.loads(payload) if payload else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(seed=1) as running:
        yield running


def test_receiver_starts_on_free_port(receiver: Receiver) -> None:
    assert receiver.port > 0
    assert receiver.url == f"http://127.0.0.1:{receiver.port}"


def test_receiver_health(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/_receiver/health", method="GET", key=None)
    assert status == 200
    assert body == {"status": "ok"}


def test_receiver_url_before_start() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = Receiver().url


def test_push_good_request(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/push", GOOD_PUSH)

    assert status == 202
    assert body["status"] == "queued"
    assert isinstance(body["message_id"], str)


def test_push_same_key_same_message_id(receiver: Receiver) -> None:
    _, _, first = send(receiver.url + "/push", GOOD_PUSH, key="same")
    _, _, second = send(receiver.url + "/push", GOOD_PUSH, key="same")
    assert first["message_id"] == second["message_id"]


def test_push_missing_token(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/push", {"message": GOOD_PUSH["message"]})

    assert status == 400
    assert body["field"] == "token"
    assert "token" in body["error"]


def test_push_empty_token(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/push", {**GOOD_PUSH, "token": ""})
    assert status == 400
    assert body["field"] == "token"


def test_push_missing_message_title(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/push", {**GOOD_PUSH, "message": {"body": "x"}})
    assert status == 400
    assert body["field"] == "message.title"


def test_push_rejected_request_recorded(receiver: Receiver) -> None:
    send(receiver.url + "/push", {"message": GOOD_PUSH["message"]})

    record = receiver.requests("/push")[0]

    assert record["valid"] is False
    assert record["status"] == 400
    assert record["field"] == "token"


def test_push_get_not_allowed(receiver: Receiver) -> None:
    status, headers, body = send(receiver.url + "/push", method="GET")

    assert status == 405
    assert headers["Allow"] == "POST"
    assert body["field"] == "method"


def test_missing_idempotency_key(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/push", GOOD_PUSH, key=None)
    assert status == 400
    assert body["field"] == "Idempotency-Key"


def test_idempotency_key_check_disabled() -> None:
    with Receiver(require_idempotency_key=False) as running:
        status, _, _ = send(running.url + "/push", GOOD_PUSH, key=None)
    assert status == 202


def test_wrong_content_type(receiver: Receiver) -> None:
    status, _, body = send(
        receiver.url + "/push", GOOD_PUSH, headers={"Content-Type": "text/plain"}
    )
    assert status == 400
    assert body["field"] == "Content-Type"


def test_content_type_with_charset_accepted(receiver: Receiver) -> None:
    status, _, _ = send(
        receiver.url + "/push",
        GOOD_PUSH,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 202


@pytest.mark.parametrize(
    ("raw", "expected_text"),
    [
        (b'{"token": "\xff"}', "not UTF-8"),
        (b'{"token": ', "not JSON"),
        (b'["a list"]', "expected a JSON object"),
    ],
)
def test_invalid_body(receiver: Receiver, raw: bytes, expected_text: str) -> None:
    status, _, body = send(receiver.url + "/push", raw=raw)

    assert status == 400
    assert body["field"] == "body"
    assert expected_text in body["error"]


def test_post_without_body(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/anything", raw=b"")
    assert status == 400
    assert body["field"] == "body"


def test_email_good_request(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/email", GOOD_EMAIL)

    assert status == 202
    assert body["accepted"] is True
    assert isinstance(body["email_id"], str)


def test_email_html_instead_of_template(receiver: Receiver) -> None:
    email_body = {"to": "a@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    status, _, _ = send(receiver.url + "/email", email_body)
    assert status == 202


@pytest.mark.parametrize(
    ("email_body", "field"),
    [
        ({**GOOD_EMAIL, "to": "not-an-address"}, "to"),
        ({"to": "a@example.com", "template": "t"}, "subject"),
        ({"to": "a@example.com", "subject": "Hi"}, "template"),
        ({**GOOD_EMAIL, "text": 5}, "text"),
    ],
)
def test_email_invalid_request(receiver: Receiver, email_body: dict[str, Any], field: str) -> None:
    status, _, body = send(receiver.url + "/email", email_body)
    assert status == 400
    assert body["field"] == field


def test_other_path_any_object(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/crm/v1/contacts", {"anything": [1, 2, None]})

    assert status == 200
    assert body["received"] is True


def test_other_path_get_without_body(receiver: Receiver) -> None:
    status, _, _ = send(receiver.url + "/loyalty/p000001", method="GET")
    assert status == 200


def test_extra_service_checked() -> None:
    services = {"/v2/push": "push", "/email": "email"}
    with Receiver(services=services) as running:
        status, _, body = send(running.url + "/v2/push", {"message": {}})
    assert status == 400
    assert body["field"] == "token"


def test_authorization_never_recorded(tmp_path: Path) -> None:
    record_path = tmp_path / "requests.jsonl"
    secret = "s3cr3t-bearer-value"

    with Receiver(record_path=record_path) as running:
        send(
            running.url + "/push",
            GOOD_PUSH,
            headers={"Authorization": f"Bearer {secret}", "X-Api-Key": secret},
        )
        records = running.requests()

    record = records[0]
    assert record["authorization_present"] is True
    assert record["credential_headers"] == ["Authorization", "X-Api-Key"]
    assert secret not in json.dumps(records)
    assert secret not in record_path.read_text(encoding="utf-8")


def test_authorization_absent_recorded(receiver: Receiver) -> None:
    send(receiver.url + "/push", GOOD_PUSH)
    assert receiver.requests()[0]["authorization_present"] is False


def test_query_credentials_redacted(receiver: Receiver) -> None:
    send(receiver.url + "/crm?api_key=s3cr3t&campaign=spring", {"a": 1})

    query = receiver.requests()[0]["query"]

    assert query["api_key"] == ["[redacted]"]
    assert query["campaign"] == ["spring"]


def test_record_selected_headers(receiver: Receiver) -> None:
    send(receiver.url + "/push", GOOD_PUSH, key="abc", headers={"User-Agent": "journey-test"})

    headers = receiver.requests()[0]["headers"]

    assert headers == {
        "Idempotency-Key": "abc",
        "Content-Type": "application/json",
        "User-Agent": "journey-test",
    }


def test_record_file_lines_valid_json(tmp_path: Path) -> None:
    record_path = tmp_path / "requests.jsonl"

    with Receiver(record_path=record_path) as running:
        send(running.url + "/push", GOOD_PUSH, key="a")
        send(running.url + "/push", {"token": "Zoë 山田"}, key="b")
        send(running.url + "/email", GOOD_EMAIL, key="c")

    lines = record_path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    assert [record["path"] for record in records] == ["/push", "/push", "/email"]
    assert records[1]["body"]["token"] == "Zoë 山田"
    assert all(isinstance(record["received_at"], float) for record in records)


def test_requests_path_filter(receiver: Receiver) -> None:
    send(receiver.url + "/push", GOOD_PUSH, key="a")
    send(receiver.url + "/email", GOOD_EMAIL, key="b")

    status, _, body = send(receiver.url + "/_receiver/requests?path=/email", method="GET", key=None)

    assert status == 200
    assert body["count"] == 1
    assert body["requests"][0]["path"] == "/email"


def test_stats_counts(receiver: Receiver) -> None:
    send(receiver.url + "/push", GOOD_PUSH, key="a")
    send(receiver.url + "/push", GOOD_PUSH, key="a")
    send(receiver.url + "/push", {"message": {}}, key="b")
    send(receiver.url + "/email", GOOD_EMAIL, key="c")

    _, _, stats = send(receiver.url + "/_receiver/stats", method="GET", key=None)

    assert stats["total"] == 4
    assert stats["by_path"] == {"/email": {"202": 1}, "/push": {"202": 2, "400": 1}}
    assert stats["distinct_idempotency_keys"] == 3
    assert stats["rejected"] == 1


def test_control_requests_not_recorded(receiver: Receiver) -> None:
    send(receiver.url + "/_receiver/stats", method="GET", key=None)
    assert receiver.requests() == []


def test_unknown_control_path(receiver: Receiver) -> None:
    status, _, body = send(receiver.url + "/_receiver/nothing", method="GET", key=None)
    assert status == 404
    assert body["field"] == "path"


def test_reset_clears_records(receiver: Receiver) -> None:
    send(receiver.url + "/push", GOOD_PUSH)

    status, _, _ = send(receiver.url + "/_receiver/reset", {}, key=None)

    assert status == 200
    assert receiver.requests() == []
    assert receiver.stats()["total"] == 0


def test_max_records_keeps_newest() -> None:
    with Receiver(max_records=2) as running:
        for index in range(3):
            send(running.url + "/push", GOOD_PUSH, key=f"k{index}")
        kept_keys = [record["headers"]["Idempotency-Key"] for record in running.requests()]
        total = running.stats()["total"]
    assert kept_keys == ["k1", "k2"]
    assert total == 3


def _push_statuses(receiver: Receiver, count: int) -> list[int]:
    return [send(receiver.url + "/push", GOOD_PUSH, key=f"key-{i}")[0] for i in range(count)]


def test_rate_rule_reproducible_with_seed() -> None:
    rule = {"path": "/push", "status": 503, "rate": 0.3}
    with Receiver(rules=[rule], seed=42) as first:
        first_statuses = _push_statuses(first, 60)
    with Receiver(rules=[rule], seed=42) as second:
        second_statuses = _push_statuses(second, 60)

    assert first_statuses == second_statuses
    assert 503 in first_statuses
    assert 202 in first_statuses


def test_rate_rule_other_seed_differs() -> None:
    rule = {"path": "/push", "status": 503, "rate": 0.5}
    with Receiver(rules=[rule], seed=1) as first:
        first_statuses = _push_statuses(first, 60)
    with Receiver(rules=[rule], seed=2) as second:
        second_statuses = _push_statuses(second, 60)
    assert first_statuses != second_statuses


def test_rate_rule_other_path_untouched() -> None:
    with Receiver(rules=[{"path": "/push", "status": 503, "rate": 1}]) as running:
        status, _, _ = send(running.url + "/email", GOOD_EMAIL)
    assert status == 202


def test_rule_response_body(receiver: Receiver) -> None:
    receiver.configure(rules=[{"status": 503}])

    status, _, body = send(receiver.url + "/push", GOOD_PUSH)

    assert status == 503
    assert body == {"error": "Service Unavailable", "status": 503}
    assert receiver.requests()[0]["rule"] == 0


def test_rule_custom_body(receiver: Receiver) -> None:
    receiver.configure(rules=[{"status": 422, "body": {"code": "BAD_TOKEN"}}])
    _, _, body = send(receiver.url + "/push", GOOD_PUSH)
    assert body == {"code": "BAD_TOKEN"}


def test_retry_after_seconds() -> None:
    with Receiver(rules=[{"status": 429, "retry_after": "2"}]) as running:
        status, headers, _ = send(running.url + "/push", GOOD_PUSH)
    assert status == 429
    assert headers["Retry-After"] == "2"


def test_retry_after_http_date() -> None:
    rule = {"status": 503, "retry_after": 30, "retry_after_format": "http-date"}
    with Receiver(rules=[rule]) as running:
        _, headers, _ = send(running.url + "/push", GOOD_PUSH)

    retry_at = email.utils.parsedate_to_datetime(headers["Retry-After"])

    assert retry_at.timestamp() > time.time()


def test_every_rule() -> None:
    with Receiver(rules=[{"status": 500, "every": 3}]) as running:
        statuses = _push_statuses(running, 6)
    assert statuses == [202, 202, 500, 202, 202, 500]


def test_fail_first_attempts_per_key() -> None:
    with Receiver(rules=[{"status": 503, "first": 2}]) as running:
        key_a = [send(running.url + "/push", GOOD_PUSH, key="a")[0] for _ in range(3)]
        key_b = [send(running.url + "/push", GOOD_PUSH, key="b")[0] for _ in range(3)]
        attempts = [record["attempt"] for record in running.requests()]
    assert key_a == [503, 503, 202]
    assert key_b == [503, 503, 202]
    assert attempts == [1, 2, 3, 1, 2, 3]


def test_when_body_prefix_rule() -> None:
    rule = {"path": "/push", "status": 410, "when_body": {"token": "expired-*"}}
    with Receiver(rules=[rule]) as running:
        expired, _, _ = send(running.url + "/push", {**GOOD_PUSH, "token": "expired-77"})
        fresh, _, _ = send(running.url + "/push", GOOD_PUSH, key="key-2")
    assert expired == 410
    assert fresh == 202


def test_rules_first_match_wins() -> None:
    rules: list[dict[str, Any]] = [{"path": "/push", "status": 410}, {"status": 500}]
    with Receiver(rules=rules) as running:
        push, _, _ = send(running.url + "/push", GOOD_PUSH)
        email_status, _, _ = send(running.url + "/email", GOOD_EMAIL)
    assert push == 410
    assert email_status == 500


def test_shape_check_before_rules() -> None:
    with Receiver(rules=[{"status": 503}]) as running:
        status, _, _ = send(running.url + "/push", {"message": {}})
    assert status == 400


def test_fixed_delay() -> None:
    with Receiver(delay_ms=150) as running:
        started = time.monotonic()
        send(running.url + "/push", GOOD_PUSH)
        elapsed = time.monotonic() - started
        record = running.requests()[0]
    # A lower bound only: the response must not come before the delay has passed.
    assert elapsed >= 0.15
    assert record["delay_ms"] == 150


def test_delay_range_reproducible() -> None:
    with Receiver(delay_ms="1-20", seed=5) as first:
        _push_statuses(first, 5)
        first_delays = [record["delay_ms"] for record in first.requests()]
    with Receiver(delay_ms=(1, 20), seed=5) as second:
        _push_statuses(second, 5)
        second_delays = [record["delay_ms"] for record in second.requests()]
    assert first_delays == second_delays
    assert all(1 <= delay <= 20 for delay in first_delays)


def test_runtime_config_endpoint(receiver: Receiver) -> None:
    change = {"rules": [{"path": "/push", "status": 503}], "delay_ms": [0, 5]}
    status, _, config = send(receiver.url + "/_receiver/config", change, key=None)

    push_status, _, _ = send(receiver.url + "/push", GOOD_PUSH)

    assert status == 200
    assert config["rules"] == [{"path": "/push", "status": 503}]
    assert config["delay_ms"] == [0, 5]
    assert push_status == 503


def test_runtime_config_get(receiver: Receiver) -> None:
    status, _, config = send(receiver.url + "/_receiver/config", method="GET", key=None)
    assert status == 200
    assert config["seed"] == 1
    assert config["services"] == {"/push": "push", "/email": "email"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rules": [{"status": 99}]}, "rules[0].status"),
        ({"rules": [{"status": 503, "rate": 2}]}, "rules[0].rate"),
        ({"rules": [{"status": 503, "colour": "red"}]}, "rules[0].colour"),
        ({"delay_ms": "fast"}, "delay_ms"),
        ({"speed": 3}, "speed"),
        ({"services": {"push": "push"}}, "services"),
    ],
)
def test_runtime_config_invalid(receiver: Receiver, change: dict[str, Any], field: str) -> None:
    status, _, body = send(receiver.url + "/_receiver/config", change, key=None)
    assert status == 400
    assert body["field"] == field


def test_configure_method(receiver: Receiver) -> None:
    receiver.configure(rules=[ResponseRule(status=500, path="/email")])

    push, _, _ = send(receiver.url + "/push", GOOD_PUSH)
    email_status, _, _ = send(receiver.url + "/email", GOOD_EMAIL)

    assert push == 202
    assert email_status == 500


def test_configure_invalid_rule(receiver: Receiver) -> None:
    with pytest.raises(RuleError, match="rate"):
        receiver.configure(rules=[{"status": 503, "rate": -1}])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/push:503:0.1", ResponseRule(status=503, path="/push", rate=0.1)),
        ("500:every=10", ResponseRule(status=500, every=10)),
        ("*:429:rate=0.05:retry_after=2", ResponseRule(status=429, rate=0.05, retry_after="2")),
        (
            "/email:503:first=2:method=post",
            ResponseRule(status=503, path="/email", first=2, method="POST"),
        ),
        (
            '{"status": 410, "when_body": {"token": "expired-*"}}',
            ResponseRule(status=410, when_body={"token": "expired-*"}),
        ),
    ],
)
def test_parse_rule_forms(text: str, expected: ResponseRule) -> None:
    assert parse_rule(text) == expected


@pytest.mark.parametrize("text", ["/push", "/push:abc", "/push:503:often", "/push:503:colour=red"])
def test_parse_rule_invalid(text: str) -> None:
    with pytest.raises(RuleError, match="Invalid rule"):
        parse_rule(text)


def test_receiver_rejects_other_host() -> None:
    with pytest.raises(ValueError, match=r"listens on 127\.0\.0\.1 only"):
        Receiver(host="0.0.0.0")


def test_main_rejects_other_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0", "--port", "0"])

    assert exit_info.value.code == 2
    assert "listens on 127.0.0.1 only" in capsys.readouterr().err


def test_main_rejects_invalid_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--port", "0", "--rule", "/push:often"])
    assert "Invalid rule" in capsys.readouterr().err


def test_main_help_lists_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    for flag in ("--host", "--port", "--record", "--delay-ms", "--rule", "--seed", "--service"):
        assert flag in help_text
    assert "milliseconds" in help_text


def test_command_serves_and_stops(tmp_path: Path) -> None:
    record_path = tmp_path / "cli.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_journey.receiver",
            "--port",
            "0",
            "--record",
            str(record_path),
            "--rule",
            "/push:503:first=1",
            "--seed",
            "9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        first, _, _ = send(url + "/push", GOOD_PUSH)
        second, _, _ = send(url + "/push", GOOD_PUSH)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)

    assert url.startswith("http://127.0.0.1:")
    assert first == 503
    assert second == 202
    assert process.returncode == 0
    assert "stopped after 2 requests" in stderr
    assert len(record_path.read_text(encoding="utf-8").splitlines()) == 2
