"""Deterministic demo profiles for trying journeys without real customer data.

The same ``count`` and ``seed`` produce the same profiles on any day, because dates are
relative to the fixed ``ANCHOR_DATE`` and not to today. They depend on ``random.Random``,
so a Python release that changes its algorithms could change them. Names include
apostrophes, quotes, accents, non-Latin scripts and emoji, so templates and payloads are
exercised with the data that breaks hand-built JSON.

Command line::

    python -m airflow_provider_journey.demo.profiles --db /tmp/demo.db --count 10000 --seed 7
"""

from __future__ import annotations

import argparse
import datetime
import random
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# Signup dates fall within the 730 days before this date.
ANCHOR_DATE = datetime.date(2026, 1, 1)
SIGNUP_WINDOW_DAYS = 730

PUSH_TOKEN_SHARE = 0.6
PHONE_SHARE = 0.8
OPT_IN_SHARE = 0.7
NICKNAME_SHARE = 0.05
# Share of profiles whose name comes from the international pool (other scripts and
# spellings) instead of the pool of their locale.
INTERNATIONAL_NAME_SHARE = 0.12

INSERT_BATCH_SIZE = 1000

LOCALE_WEIGHTS: dict[str, int] = {"nl": 35, "en": 25, "de": 20, "fr": 20}

COUNTRIES_BY_LOCALE: dict[str, tuple[str, ...]] = {
    "en": ("GB", "US", "US", "IE"),
    "nl": ("NL", "NL", "NL", "BE"),
    "de": ("DE", "DE", "AT", "CH"),
    "fr": ("FR", "FR", "BE", "CH"),
}

FIRST_NAMES_BY_LOCALE: dict[str, tuple[str, ...]] = {
    "en": (
        "Olivia",
        "Liam",
        "Emma",
        "Noah",
        "Siobhán",
        "Seán",
        "Grace",
        "Jack",
        "Chloë",
        'Robert "Bobby"',
        "Mary-Kate",
        "Aoife",
    ),
    "nl": (
        "Daan",
        "Sem",
        "Julia",
        "Tess",
        "Anouk",
        "Sanne",
        "Joëlle",
        "Ruud",
        "IJsbrand",
        "Femke",
        "Zoë",
        "Bram",
    ),
    "de": (
        "Lukas",
        "Jürgen",
        "Anna",
        "Lea",
        "Maximilian",
        "Sophie",
        "Björn",
        "Käthe",
        "Jörg",
        "Mia",
        "Felix",
        "Hannah",
    ),
    "fr": (
        "Camille",
        "Léa",
        "Hugo",
        "Chloé",
        "José",
        "Inès",
        "Émile",
        "Gaëlle",
        "Noël",
        "Anne-Sophie",
        "Françoise",
        "Théo",
    ),
}

LAST_NAMES_BY_LOCALE: dict[str, tuple[str, ...]] = {
    "en": (
        "Smith",
        "O'Brien",
        "Johnson",
        "O'Connor",
        "Williams",
        "McAllister",
        "Brown",
        "Taylor",
        "D'Arcy",
        "Evans",
    ),
    "nl": (
        "de Vries",
        "Jansen",
        "van den Berg",
        "Bakker",
        "Visser",
        "Smit",
        "de Jong",
        "van 't Hof",
        "Meijer",
        "Mulder",
    ),
    "de": (
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weiß",
        "Größer",
        "Becker",
        "Hoffmann",
        "Schäfer",
        "Koch",
    ),
    "fr": (
        "Martin",
        "Bernard",
        "Dubois",
        "Lefèvre",
        "Girard",
        "D'Aubigné",
        "Moreau",
        "Fournier",
        "Châtelet",
        "Rousseau",
    ),
}

# Names from other scripts and spellings that live in any of the four locales.
INTERNATIONAL_NAMES: tuple[tuple[str, str], ...] = (
    ("太郎", "山田"),
    ("Thị Lan", "Nguyễn"),
    ("Martin", "Ødegaard"),
    ("Søren", "Kierkegård"),
    ("Αλέξανδρος", "Παπαδόπουλος"),
    ("Дмитрий", "Иванов"),
    ("محمد", "الأحمد"),
    ("Ayşe", "Yılmaz"),  # noqa: RUF001 - the dotless i is the Turkish spelling
    ("Małgorzata", "Wiśniewska"),
    ("지민", "김"),
    ("Priya", "Śrīnivāsan"),
    ("Zoë", "Ó Súilleabháin"),
)

NICKNAMES: tuple[str, ...] = ("Sunny ☀️", "🚀 Rocket", "Bee 🐝", "Coco 🥥", "Max 💪", "🌸")

# Letters that NFKD does not split into a base letter and a combining mark.
ASCII_REPLACEMENTS: dict[str, str] = {
    "ø": "o",
    "æ": "ae",
    "œ": "oe",
    "ß": "ss",
    "đ": "d",
    "ł": "l",
    "þ": "th",
    "ı": "i",  # noqa: RUF001 - Turkish dotless i, mapped on purpose
}

EMAIL_DOMAINS_BY_LOCALE: dict[str, tuple[str, ...]] = {
    "en": ("example.com", "example.org"),
    "nl": ("example.nl", "example.nl", "example.com"),
    "de": ("example.com", "example.org"),
    "fr": ("example.com", "example.org"),
}

# E.164 mobile number prefix and the number of digits that follow it, per country.
PHONE_FORMAT_BY_COUNTRY: dict[str, tuple[str, int]] = {
    "GB": ("+447", 9),
    "US": ("+1", 10),
    "IE": ("+3538", 8),
    "NL": ("+316", 8),
    "BE": ("+324", 8),
    "DE": ("+4915", 9),
    "AT": ("+43664", 7),
    "CH": ("+4179", 7),
    "FR": ("+336", 8),
}

# A few real zip codes with leading zeros, so the demo data always contains some.
US_ZIP_CODES_WITH_LEADING_ZEROS: tuple[str, ...] = ("00501", "02108", "07030", "06103")

COLUMNS: tuple[tuple[str, str], ...] = (
    ("profile_id", "TEXT PRIMARY KEY"),
    ("first_name", "TEXT NOT NULL"),
    ("last_name", "TEXT NOT NULL"),
    ("nickname", "TEXT"),
    ("email", "TEXT NOT NULL"),
    ("locale", "TEXT NOT NULL"),
    ("country", "TEXT NOT NULL"),
    ("phone", "TEXT"),
    ("push_token", "TEXT"),
    ("signup_date", "TEXT NOT NULL"),
    ("loyalty_points", "INTEGER NOT NULL"),
    # SQLite has no boolean type, so the flag is stored as 0 or 1.
    ("marketing_opt_in", "INTEGER NOT NULL"),
    # TEXT keeps leading zeros ("00501").
    ("zip_code", "TEXT NOT NULL"),
)

TABLE_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def generate_profiles(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield ``count`` demo profiles, the same ones for the same ``count`` and ``seed``.

    Profile ids run from ``p000001`` upwards. About 60 % of the profiles have a push token
    and about 80 % a phone number; the others have None in that field.
    """
    if count < 0:
        raise ValueError(f"Invalid profile count {count}: pass 0 or a positive number.")

    rng = random.Random(seed)
    for number in range(1, count + 1):
        yield _generate_profile(rng, number)


def write_sqlite(path: str | Path, count: int, seed: int = 7, table: str = "profiles") -> int:
    """Write ``count`` demo profiles to ``table`` in the SQLite file at ``path``.

    An existing table of that name is dropped first. Returns the number of rows in the
    table after the write.
    """
    if TABLE_NAME_PATTERN.fullmatch(table) is None:
        raise ValueError(
            f"Invalid table name {table!r}: use letters, digits and underscores, "
            "starting with a letter or underscore."
        )

    column_names = [name for name, _ in COLUMNS]
    column_definitions = ", ".join(f"{name} {definition}" for name, definition in COLUMNS)
    placeholders = ", ".join("?" for _ in COLUMNS)
    insert_statement = f"INSERT INTO {table} ({', '.join(column_names)}) VALUES ({placeholders})"

    connection = sqlite3.connect(str(path))
    try:
        with connection:
            connection.execute(f"DROP TABLE IF EXISTS {table}")
            connection.execute(f"CREATE TABLE {table} ({column_definitions})")

            batch: list[tuple[Any, ...]] = []
            for profile in generate_profiles(count, seed):
                batch.append(_to_sqlite_row(profile, column_names))
                if len(batch) >= INSERT_BATCH_SIZE:
                    connection.executemany(insert_statement, batch)
                    batch.clear()
            if batch:
                connection.executemany(insert_statement, batch)

        row_count: int = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        connection.close()
    return row_count


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: write demo profiles to a SQLite file."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_journey.demo.profiles",
        description="Write deterministic demo profiles to a SQLite table.",
    )
    parser.add_argument("--db", required=True, help="path of the SQLite file to write")
    parser.add_argument(
        "--count", type=int, default=1000, help="number of profiles to write (default: 1000)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        help="seed of the generator; the same seed gives the same profiles (default: 7)",
    )
    parser.add_argument(
        "--table",
        default="profiles",
        help="table to create, replacing an existing one (default: profiles)",
    )
    args = parser.parse_args(argv)

    if args.count < 0:
        parser.error(f"invalid --count {args.count}: pass 0 or a positive number")
    try:
        rows = write_sqlite(args.db, args.count, seed=args.seed, table=args.table)
    except ValueError as error:
        parser.error(str(error))
    except sqlite3.Error as error:
        print(f"Writing profiles to {args.db} failed: {error}", file=sys.stderr)
        return 1

    print(f"Wrote {rows} profiles to table {args.table} in {args.db} (seed {args.seed}).")
    return 0


def _generate_profile(rng: random.Random, number: int) -> dict[str, Any]:
    locale = rng.choices(list(LOCALE_WEIGHTS), weights=list(LOCALE_WEIGHTS.values()))[0]
    country = rng.choice(COUNTRIES_BY_LOCALE[locale])
    first_name, last_name = _pick_name(rng, locale)
    nickname = rng.choice(NICKNAMES) if rng.random() < NICKNAME_SHARE else None
    phone = _make_phone(rng, country) if rng.random() < PHONE_SHARE else None
    push_token = f"{rng.getrandbits(256):064x}" if rng.random() < PUSH_TOKEN_SHARE else None
    signup_date = ANCHOR_DATE - datetime.timedelta(days=rng.randrange(SIGNUP_WINDOW_DAYS))

    return {
        "profile_id": f"p{number:06d}",
        "first_name": first_name,
        "last_name": last_name,
        "nickname": nickname,
        "email": _make_email(rng, locale, first_name, last_name, number),
        "locale": locale,
        "country": country,
        "phone": phone,
        "push_token": push_token,
        "signup_date": signup_date.isoformat(),
        "loyalty_points": _make_loyalty_points(rng),
        "marketing_opt_in": rng.random() < OPT_IN_SHARE,
        "zip_code": _make_zip_code(rng, country),
    }


def _pick_name(rng: random.Random, locale: str) -> tuple[str, str]:
    if rng.random() < INTERNATIONAL_NAME_SHARE:
        return rng.choice(INTERNATIONAL_NAMES)
    return rng.choice(FIRST_NAMES_BY_LOCALE[locale]), rng.choice(LAST_NAMES_BY_LOCALE[locale])


def _to_ascii_slug(text: str) -> str:
    lowered = "".join(ASCII_REPLACEMENTS.get(char, char) for char in text.lower())
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(char for char in decomposed if char.isascii() and char.isalnum())


def _make_email(
    rng: random.Random, locale: str, first_name: str, last_name: str, number: int
) -> str:
    # The profile number keeps addresses unique. Names in scripts without an ASCII
    # spelling (山田) leave an empty slug and fall back to "customer".
    parts = [slug for slug in (_to_ascii_slug(first_name), _to_ascii_slug(last_name)) if slug]
    local_part = ".".join(parts) if parts else "customer"
    domain = rng.choice(EMAIL_DOMAINS_BY_LOCALE[locale])
    return f"{local_part}.{number}@{domain}"


def _make_phone(rng: random.Random, country: str) -> str:
    prefix, digit_count = PHONE_FORMAT_BY_COUNTRY[country]
    return prefix + "".join(str(rng.randrange(10)) for _ in range(digit_count))


def _make_loyalty_points(rng: random.Random) -> int:
    # Most members have few points and a few have many, as in real loyalty programmes.
    if rng.random() < 0.15:
        return 0
    return min(int(rng.paretovariate(1.2) * 50), 250_000)


def _make_zip_code(rng: random.Random, country: str) -> str:
    if country == "US":
        if rng.random() < 0.1:
            return rng.choice(US_ZIP_CODES_WITH_LEADING_ZEROS)
        return f"{rng.randrange(100_000):05d}"
    if country in ("DE", "FR"):
        return f"{rng.randrange(1_000, 100_000):05d}"
    if country == "NL":
        letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXZ") for _ in range(2))
        return f"{rng.randrange(1_000, 10_000)} {letters}"
    if country in ("BE", "AT", "CH"):
        return f"{rng.randrange(1_000, 10_000)}"
    if country == "GB":
        return rng.choice(("SW1A 1AA", "EC1A 1BB", "M1 1AE", "B33 8TH", "CR2 6XH"))
    return rng.choice(("D02 X285", "T12 R2NP", "H91 E2K3"))


def _to_sqlite_row(profile: dict[str, Any], column_names: Sequence[str]) -> tuple[Any, ...]:
    values = []
    for name in column_names:
        value = profile[name]
        values.append(int(value) if isinstance(value, bool) else value)
    return tuple(values)


if __name__ == "__main__":
    sys.exit(main())
