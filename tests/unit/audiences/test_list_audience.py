"""ListAudience: records from memory or XCom, including values Airflow rendered to strings."""

from __future__ import annotations

import pytest

from airflow_provider_journey.audiences import ListAudience
from airflow_provider_journey.exceptions import AudienceError


def test_list_yields_profiles_with_rows() -> None:
    audience = ListAudience([{"profile_id": "a", "x": 1}, {"profile_id": 2}])

    profiles = list(audience.profiles())

    assert [profile.id for profile in profiles] == ["a", "2"]
    assert [profile.row for profile in profiles] == [1, 2]
    assert profiles[0].attributes == {"profile_id": "a", "x": 1}


def test_list_record_without_id_is_invalid() -> None:
    audience = ListAudience([{"profile_id": "a"}, {"profile_id": ""}, {"email": "b@x.org"}])

    profiles = list(audience.profiles())

    assert [profile.id for profile in profiles] == ["a", None, None]
    assert "row 3" in (profiles[2].error or "")


def test_list_non_mapping_record_is_invalid() -> None:
    audience = ListAudience([{"profile_id": "a"}, "b"])  # type: ignore[list-item]

    profiles = list(audience.profiles())

    assert profiles[1].id is None
    assert "is a str, not a mapping" in (profiles[1].error or "")


def test_list_custom_id_field() -> None:
    audience = ListAudience([{"customer": 7}], id_field="customer")

    assert next(audience.profiles()).id == "7"


def test_list_parses_records_rendered_as_json() -> None:
    audience = ListAudience('[{"profile_id": "a"}, {"profile_id": "b"}]')

    assert [profile.id for profile in audience.profiles()] == ["a", "b"]


def test_list_parses_records_rendered_as_python_repr() -> None:
    audience = ListAudience("[{'profile_id': 'a', 'opt_in': True, 'zip': None}]")

    profile = next(audience.profiles())

    assert profile.attributes == {"profile_id": "a", "opt_in": True, "zip": None}


def test_list_unparseable_string_raises() -> None:
    audience = ListAudience("not a list")

    with pytest.raises(AudienceError, match="render_template_as_native_obj"):
        list(audience.profiles())


def test_list_declares_records_as_template_field() -> None:
    assert tuple(ListAudience.template_fields) == ("records",)
