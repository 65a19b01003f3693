"""FileAudience: CSV and JSONL streaming, hard values, bad lines, missing files, memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from airflow_provider_journey.audiences import FileAudience
from airflow_provider_journey.exceptions import AudienceError

HARD_CSV = (
    "profile_id,name,zip,note\r\n"
    '1,"Doe, Jane",00501,"said ""hi"""\r\n'
    '2,Zoë Ångström,,"line one\nline two"\r\n'
    "3,東京,10001,plain\r\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_csv_reads_quoted_commas_quotes_and_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", HARD_CSV)

    profiles = list(FileAudience(str(path)).profiles())

    assert [profile.id for profile in profiles] == ["1", "2", "3"]
    assert profiles[0].attributes["name"] == "Doe, Jane"
    assert profiles[0].attributes["note"] == 'said "hi"'
    assert profiles[1].attributes["note"] == "line one\nline two"


def test_csv_keeps_values_as_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", HARD_CSV)

    first = next(FileAudience(path).profiles())

    assert first.attributes["zip"] == "00501"


def test_csv_empty_cell_becomes_none(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", HARD_CSV)

    second = list(FileAudience(path).profiles())[1]

    assert second.attributes["zip"] is None


def test_csv_keeps_non_ascii(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", HARD_CSV)

    profiles = list(FileAudience(path).profiles())

    assert profiles[1].attributes["name"] == "Zoë Ångström"
    assert profiles[2].attributes["name"] == "東京"


def test_csv_rows_count_records_not_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", HARD_CSV)

    rows = [profile.row for profile in FileAudience(path).profiles()]

    assert rows == [1, 2, 3]


def test_csv_ignores_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "\ufeffprofile_id,email\r\n7,a@example.com\r\n")

    profile = next(FileAudience(path).profiles())

    assert profile.id == "7"


def test_csv_row_without_id_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "profile_id,email\n1,a@x.org\n,b@x.org\n3,c@x.org\n")

    profiles = list(FileAudience(path).profiles())

    assert [profile.id for profile in profiles] == ["1", None, "3"]
    assert profiles[1].row == 2
    assert profiles[1].attributes["email"] == "b@x.org"
    assert "row 2" in (profiles[1].error or "")
    assert "'profile_id'" in (profiles[1].error or "")


def test_csv_row_with_extra_fields_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "profile_id,email\n1,a@x.org\n2,b@x.org,extra\n3,c\n")

    profiles = list(FileAudience(path).profiles())

    assert [profile.id for profile in profiles] == ["1", None, "3"]
    assert "3 fields but the header has 2" in (profiles[1].error or "")


def test_csv_short_row_fills_none(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "profile_id,email,zip\n1,a@x.org\n")

    profile = next(FileAudience(path).profiles())

    assert profile.attributes == {"profile_id": "1", "email": "a@x.org", "zip": None}


def test_csv_without_id_column_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "customer,email\n1,a@x.org\n")

    with pytest.raises(AudienceError, match="no column 'profile_id'"):
        list(FileAudience(path).profiles())


def test_csv_custom_id_field(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "customer,email\n42,a@x.org\n")

    profile = next(FileAudience(path, id_field="customer").profiles())

    assert profile.id == "42"


def test_csv_duplicate_column_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "profile_id,email,email\n1,a,b\n")

    with pytest.raises(AudienceError, match="column 'email' twice"):
        list(FileAudience(path).profiles())


def test_csv_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "")

    assert list(FileAudience(path).profiles()) == []


def test_jsonl_reads_records_and_skips_blank_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"profile_id": 1, "name": "Zoë", "tags": ["a", "b"]}, ensure_ascii=False),
        "",
        "   ",
        json.dumps({"profile_id": "007", "quote": 'he said "no"\nthen left'}),
    ]
    path = write(tmp_path / "audience.jsonl", "\n".join(lines) + "\n")

    profiles = list(FileAudience(path).profiles())

    assert [profile.id for profile in profiles] == ["1", "007"]
    assert [profile.row for profile in profiles] == [1, 2]
    assert profiles[0].attributes["name"] == "Zoë"
    assert profiles[0].attributes["tags"] == ["a", "b"]
    assert profiles[1].attributes["quote"] == 'he said "no"\nthen left'


def test_jsonl_invalid_line_does_not_stop_others(tmp_path: Path) -> None:
    text = '{"profile_id": "a"}\n{"profile_id": "b", oops}\n[1, 2]\n{"profile_id": "c"}\n'
    path = write(tmp_path / "audience.ndjson", text)

    profiles = list(FileAudience(path).profiles())

    assert [profile.id for profile in profiles] == ["a", None, None, "c"]
    assert "line 2" in (profiles[1].error or "")
    assert "not valid JSON" in (profiles[1].error or "")
    assert "JSON list, not an object" in (profiles[2].error or "")


def test_jsonl_record_without_id_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.jsonl", '{"email": "a@x.org"}\n{"profile_id": null}\n')

    profiles = list(FileAudience(path).profiles())

    assert [profile.id for profile in profiles] == [None, None]
    assert profiles[0].attributes == {"email": "a@x.org"}
    assert profiles[0].error is not None


def test_jsonl_valid_profile_has_no_error(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.jsonl", '{"profile_id": "a"}\n')

    profile = next(FileAudience(path).profiles())

    assert profile.error is None


def test_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.txt", '{"profile_id": "a"}\n')

    profiles = list(FileAudience(path, format="jsonl").profiles())

    assert [profile.id for profile in profiles] == ["a"]


def test_unknown_suffix_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.txt", "profile_id\n1\n")

    with pytest.raises(AudienceError, match="format='csv'"):
        list(FileAudience(path).profiles())


def test_unknown_format_raises() -> None:
    with pytest.raises(AudienceError, match="'xml' is not supported"):
        FileAudience("a.xml", format="xml")


def test_missing_file_raises_audience_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "audience.csv"

    with pytest.raises(AudienceError) as caught:
        list(FileAudience(str(path)).profiles())

    assert str(caught.value) == (
        f"audience file {path} not found; check the path or the upstream task that writes it"
    )


def test_missing_object_storage_file_raises(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/audience.jsonl"

    with pytest.raises(AudienceError, match="not found"):
        list(FileAudience(url).profiles())


def test_object_storage_url_is_read(tmp_path: Path) -> None:
    write(tmp_path / "audience.csv", HARD_CSV)

    profiles = list(FileAudience(f"file://{tmp_path}/audience.csv").profiles())

    assert [profile.id for profile in profiles] == ["1", "2", "3"]
    assert profiles[1].attributes["note"] == "line one\nline two"


def test_non_utf8_file_raises_with_hint(tmp_path: Path) -> None:
    path = tmp_path / "audience.csv"
    path.write_bytes("profile_id,name\n1,Zo\u00eb\n".encode("latin-1"))

    with pytest.raises(AudienceError, match="set encoding"):
        list(FileAudience(path).profiles())


def test_encoding_parameter_reads_latin1(tmp_path: Path) -> None:
    path = tmp_path / "audience.csv"
    path.write_bytes("profile_id,name\n1,Zo\u00eb\n".encode("latin-1"))

    profile = next(FileAudience(path, encoding="latin-1").profiles())

    assert profile.attributes["name"] == "Zoë"


def test_missing_file_is_not_opened_before_iteration(tmp_path: Path) -> None:
    audience = FileAudience(tmp_path / "written-later.csv")

    stream = audience.profiles()

    with pytest.raises(AudienceError):
        next(stream)


def test_jsonl_memory_stays_flat_for_200000_lines(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        for number in range(200_000):
            record = {"profile_id": f"p{number}", "email": f"user{number}@example.com", "n": number}
            stream.write(json.dumps(record) + "\n")

    count = 0
    tracemalloc.start()
    try:
        for _profile in FileAudience(path).profiles():
            count += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == 200_000
    assert peak < 20 * 1024 * 1024
