"""The outcome builder's JSON body parsing gives what ``parse_json`` gives."""

from __future__ import annotations

import codecs

import pytest

from airflow_provider_journey.engine.outcome_builder import _parse_json_body
from airflow_provider_journey.engine.response import parse_json

BODIES = [
    b'{"message_id":"bench-1","status":"queued"}',
    b"[1, 2, 3]",
    b'{"name":"Zo\xc3\xab"}',
    b'{"half":"\xed\xa0\x80"}',  # a lone surrogate, which json.loads passes through
    b'{"bad":"\xff"}',
    b"{",
    b"[",
    b"[\x00",
    b"{}",
    b"  {}",
    b"null",
    b"",
    b"<html>down</html>",
    codecs.BOM_UTF8 + b'{"a":1}',
    '{"a":"é"}'.encode("utf-16"),
    '{"a":"é"}'.encode("utf-16-le"),
    '{"a":"é"}'.encode("utf-16-be"),
    '{"a":"é"}'.encode("utf-32"),
    '[{"a":1}]'.encode("utf-32-le"),
]


@pytest.mark.parametrize("body", BODIES)
def test_json_body_parses_as_parse_json(body: bytes) -> None:
    assert _parse_json_body(body) == parse_json(body)


def test_json_body_keeps_lone_surrogate() -> None:
    assert _parse_json_body(b'{"half":"\xed\xa0\x80"}') == (True, {"half": "\ud800"})
