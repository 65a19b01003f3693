"""Tests of the deterministic demo profile generator and its SQLite writer."""

from __future__ import annotations

import datetime
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_journey.demo.profiles import (
    ANCHOR_DATE,
    generate_profiles,
    main,
    write_sqlite,
)

SAMPLE_SIZE = 2000
EMAIL_PATTERN = re.compile(r"[a-z0-9.]+@example\.(com|org|nl)")


@pytest.fixture(scope="module")
def sample() -> list[dict[str, object]]:
    return list(generate_profiles(SAMPLE_SIZE, seed=7))


def test_generate_profiles_same_seed_same_rows() -> None:
    assert list(generate_profiles(300, seed=11)) == list(generate_profiles(300, seed=11))


def test_generate_profiles_other_seed_other_rows() -> None:
    assert list(generate_profiles(300, seed=11)) != list(generate_profiles(300, seed=12))


def test_generate_profiles_prefix_is_stable() -> None:
    # A larger count extends the list without changing the first profiles.
    assert list(generate_profiles(50))[:50] == list(generate_profiles(120))[:50]


def test_generate_profiles_count(sample: list[dict[str, object]]) -> None:
    assert len(sample) == SAMPLE_SIZE


def test_generate_profiles_zero_count() -> None:
    assert list(generate_profiles(0)) == []


def test_generate_profiles_negative_count() -> None:
    with pytest.raises(ValueError, match="Invalid profile count -1"):
        list(generate_profiles(-1))


def test_generate_profiles_ids_sequential(sample: list[dict[str, object]]) -> None:
    assert sample[0]["profile_id"] == "p000001"
    assert sample[-1]["profile_id"] == f"p{SAMPLE_SIZE:06d}"


def test_generate_profiles_ids_unique(sample: list[dict[str, object]]) -> None:
    assert len({profile["profile_id"] for profile in sample}) == SAMPLE_SIZE


def test_generate_profiles_push_token_share(sample: list[dict[str, object]]) -> None:
    share = sum(profile["push_token"] is not None for profile in sample) / SAMPLE_SIZE
    assert 0.5 <= share <= 0.7


def test_generate_profiles_push_token_format(sample: list[dict[str, object]]) -> None:
    tokens = [profile["push_token"] for profile in sample if profile["push_token"] is not None]
    bad = [token for token in tokens if not re.fullmatch(r"[0-9a-f]{64}", str(token))]
    assert bad == []


def test_generate_profiles_some_phones_missing(sample: list[dict[str, object]]) -> None:
    missing = sum(profile["phone"] is None for profile in sample)
    assert 0 < missing < SAMPLE_SIZE


def test_generate_profiles_emails_lowercase_ascii(sample: list[dict[str, object]]) -> None:
    emails = [str(profile["email"]) for profile in sample]
    bad = [email for email in emails if not EMAIL_PATTERN.fullmatch(email)]
    assert bad == []


def test_generate_profiles_emails_unique(sample: list[dict[str, object]]) -> None:
    assert len({profile["email"] for profile in sample}) == SAMPLE_SIZE


def test_generate_profiles_locales(sample: list[dict[str, object]]) -> None:
    assert {profile["locale"] for profile in sample} == {"en", "nl", "de", "fr"}


@pytest.mark.parametrize("name", ["O'Brien", "Zoë", "José", "Ødegaard", "山田", "Nguyễn"])
def test_generate_profiles_hard_names_present(sample: list[dict[str, object]], name: str) -> None:
    names = {profile["first_name"] for profile in sample} | {
        profile["last_name"] for profile in sample
    }
    assert name in names


def test_generate_profiles_quote_in_name(sample: list[dict[str, object]]) -> None:
    assert any('"' in str(profile["first_name"]) for profile in sample)


def test_generate_profiles_emoji_nickname(sample: list[dict[str, object]]) -> None:
    nicknames = [str(profile["nickname"]) for profile in sample if profile["nickname"]]
    assert any(ord(char) > 0xFFFF for nickname in nicknames for char in nickname)


def test_generate_profiles_signup_dates_in_window(sample: list[dict[str, object]]) -> None:
    dates = [datetime.date.fromisoformat(str(profile["signup_date"])) for profile in sample]
    assert min(dates) >= ANCHOR_DATE - datetime.timedelta(days=730)
    assert max(dates) <= ANCHOR_DATE


def test_generate_profiles_field_types(sample: list[dict[str, object]]) -> None:
    for profile in sample:
        assert isinstance(profile["loyalty_points"], int)
        assert isinstance(profile["marketing_opt_in"], bool)
        assert isinstance(profile["zip_code"], str)


def test_generate_profiles_zip_leading_zeros(sample: list[dict[str, object]]) -> None:
    assert any(str(profile["zip_code"]).startswith("0") for profile in sample)


def test_write_sqlite_round_trip(tmp_path: Path, sample: list[dict[str, object]]) -> None:
    database = tmp_path / "demo.db"

    rows = write_sqlite(database, SAMPLE_SIZE, seed=7)

    assert rows == SAMPLE_SIZE
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    stored = [dict(row) for row in connection.execute("SELECT * FROM profiles ORDER BY profile_id")]
    connection.close()
    expected = [
        {**profile, "marketing_opt_in": int(bool(profile["marketing_opt_in"]))}
        for profile in sample
    ]
    assert stored == expected


def test_write_sqlite_zip_codes_stay_text(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    write_sqlite(database, SAMPLE_SIZE)

    connection = sqlite3.connect(database)
    types = {row[0] for row in connection.execute("SELECT DISTINCT typeof(zip_code) FROM profiles")}
    leading_zero = connection.execute(
        "SELECT zip_code FROM profiles WHERE zip_code LIKE '0%' LIMIT 1"
    ).fetchone()
    connection.close()

    assert types == {"text"}
    assert leading_zero is not None
    assert isinstance(leading_zero[0], str)


def test_write_sqlite_non_ascii_stored(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    write_sqlite(database, SAMPLE_SIZE)

    connection = sqlite3.connect(database)
    found = connection.execute("SELECT COUNT(*) FROM profiles WHERE last_name = '山田'").fetchone()[
        0
    ]
    connection.close()

    assert found > 0


def test_write_sqlite_replaces_table(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    write_sqlite(database, 30)

    rows = write_sqlite(database, 10)

    assert rows == 10


def test_write_sqlite_custom_table(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"

    write_sqlite(database, 5, table="audience_a")

    connection = sqlite3.connect(database)
    count = connection.execute("SELECT COUNT(*) FROM audience_a").fetchone()[0]
    connection.close()
    assert count == 5


def test_write_sqlite_invalid_table_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Invalid table name"):
        write_sqlite(tmp_path / "demo.db", 5, table="profiles; DROP TABLE x")


def test_main_writes_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "cli.db"

    exit_code = main(["--db", str(database), "--count", "25", "--seed", "3"])

    assert exit_code == 0
    assert "Wrote 25 profiles" in capsys.readouterr().out


def test_module_runs_as_command(tmp_path: Path) -> None:
    database = tmp_path / "module.db"

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_journey.demo.profiles",
            "--db",
            str(database),
            "--count",
            "12",
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0
    assert completed.stderr == ""
    connection = sqlite3.connect(database)
    count = connection.execute("SELECT COUNT(*) FROM profiles").fetchone()[0]
    connection.close()
    assert count == 12
