"""CustomActionOperator renders template fields as Airflow does, skipping Jinja for plain text."""

from __future__ import annotations

from typing import Any

import jinja2
import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_provider_journey import CustomActionOperator, ListAudience
from airflow_provider_journey.operators._rendering import renders_unchanged

ACTION = {
    "name": "push_rendering",
    "connection_id": "push_rendering_api",
    "method": "POST",
    "path": "/push",
    "parameters": {"token": {"type": "string"}},
    "payload": {"token": "{{ token }}"},
}
CONTEXT = {"ds": "2026-01-01", "params": {"code": "007"}}
# Strings an audience may contain: plain text, text that looks like syntax but is not,
# templates of each kind, and text that Jinja rewrites (line breaks).
SAMPLES = [
    "p0000001",
    "Ada",
    "",
    "  spaced  ",
    "a { b } c",
    "50% off",
    "#1 choice",
    "<b>&amp;</b>",
    "123",
    "{{ ds }}",
    "day {{ ds }}",
    "{% if true %}yes{% endif %}",
    "no {# comment #}",
    "{{ params.code }}",
    "line one\nline two",
    "trailing\n",
    "windows\r\nline",
    "old mac\rline",
    "<< ds >>",
    "[% if true %]x[% endif %]",
    "50 %% share",
    "## line comment",
    "text ## trailing comment",
]
ENVIRONMENTS = {
    "default": {},
    "keep trailing newline": {"keep_trailing_newline": True},
    "other delimiters": {
        "variable_start_string": "<<",
        "variable_end_string": ">>",
        "block_start_string": "[%",
        "block_end_string": "%]",
    },
    "line statements": {"line_statement_prefix": "%%", "line_comment_prefix": "##"},
    "autoescape": {"autoescape": True},
}


def build_pair(dag_id: str, **dag_options: Any) -> tuple[CustomActionOperator, EmptyOperator]:
    """Return the operator and a stock Airflow operator from one DAG, so both share its Jinja."""
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1), **dag_options):
        operator = CustomActionOperator(
            task_id="push", action=ACTION, audience=[{"profile_id": "p1"}], parameters={}
        )
        reference = EmptyOperator(task_id="reference")
    return operator, reference


def render_both(
    operator: CustomActionOperator, reference: EmptyOperator, value: Any
) -> tuple[Any, Any]:
    ours = operator.render_template(value, CONTEXT, operator.get_template_env())
    airflow = reference.render_template(value, CONTEXT, reference.get_template_env())
    return ours, airflow


@pytest.mark.parametrize("options", ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
@pytest.mark.parametrize("text", SAMPLES)
def test_string_renders_as_airflow_does(options: dict[str, Any], text: str) -> None:
    operator, reference = build_pair("rendering_strings", jinja_environment_kwargs=options)

    ours, airflow = render_both(operator, reference, text)

    assert ours == airflow


@pytest.mark.parametrize("text", ["123", "[1, 2]", "True", "Ada", "{{ params.code }}"])
def test_native_dag_renders_as_airflow_does(text: str) -> None:
    operator, reference = build_pair("rendering_native", render_template_as_native_obj=True)

    ours, airflow = render_both(operator, reference, text)

    assert ours == airflow
    assert type(ours) is type(airflow)


def test_native_operator_option_renders_as_airflow_does() -> None:
    with DAG("rendering_native_task", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        operator = CustomActionOperator(
            task_id="push",
            action=ACTION,
            audience=[],
            parameters={},
            render_template_as_native_obj=True,
        )

    rendered = operator.render_template("123", CONTEXT, operator.get_template_env())

    assert rendered == 123


def test_nested_audience_renders_as_airflow_does() -> None:
    operator, reference = build_pair("rendering_nested")
    audience = [
        {
            "profile_id": "p1",
            "day": "{{ ds }}",
            "name": "Ada",
            "points": 3,
            "tags": ["a", "{{ ds }}"],
        }
    ]

    ours, airflow = render_both(operator, reference, audience)

    assert ours == airflow
    assert ours[0]["day"] == "2026-01-01"


def test_list_audience_object_is_rendered() -> None:
    operator, _ = build_pair("rendering_list_audience")
    audience = ListAudience([{"profile_id": "{{ params.code }}", "name": "Ada"}])

    operator.render_template(audience, CONTEXT, operator.get_template_env())

    assert [profile.id for profile in audience.profiles()] == ["007"]


def test_plain_strings_skip_jinja(monkeypatch: pytest.MonkeyPatch) -> None:
    operator, _ = build_pair("rendering_count")
    compiled: list[str] = []
    original = jinja2.Environment.from_string

    def counting_from_string(
        env: jinja2.Environment, source: Any, *args: Any, **kwargs: Any
    ) -> Any:
        compiled.append(source)
        return original(env, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "from_string", counting_from_string)
    audience = [
        {"profile_id": f"p{index}", "name": "Ada", "day": "{{ ds }}"} for index in range(50)
    ]

    rendered = operator.render_template(audience, CONTEXT, operator.get_template_env())

    assert compiled == ["{{ ds }}"] * 50
    assert rendered[49] == {"profile_id": "p49", "name": "Ada", "day": "2026-01-01"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", True),
        ("{{ x }}", False),
        ("{% x %}", False),
        ("{# x #}", False),
        ("a\nb", False),
        ("a\rb", False),
        ("{ x }", True),
    ],
)
def test_renders_unchanged_default_environment(text: str, expected: bool) -> None:
    operator, _ = build_pair("rendering_check")

    assert renders_unchanged(text, operator.get_template_env()) is expected


def test_renders_unchanged_rejects_native_environment() -> None:
    operator, _ = build_pair("rendering_check_native", render_template_as_native_obj=True)

    assert renders_unchanged("plain", operator.get_template_env()) is False


def test_renders_unchanged_rejects_environment_subclass() -> None:
    class CustomEnvironment(jinja2.Environment):
        pass

    assert renders_unchanged("plain", CustomEnvironment()) is False


def test_renders_unchanged_rejects_source_rewriting_extension() -> None:
    class UpperExtension(jinja2.ext.Extension):
        def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
            return source.upper()

    environment = jinja2.Environment(extensions=[UpperExtension])

    assert renders_unchanged("plain", environment) is False
