"""Decide when Airflow's template rendering would return a string unchanged.

An audience given inline as a list of dicts is a template field, so Airflow compiles
every string in it as a Jinja template before the task runs. For 1,000 profiles that
took about 0.8 s in ``bench/run.py --sections dags`` (2 cores, Airflow 3.3.2), longer
than sending the 1,000 calls. Most of those strings contain no template syntax, and
for them the compiled template only returns the text.
"""

from __future__ import annotations

import jinja2
from jinja2.ext import Extension

# The environment types Airflow 3.3.2 builds for a non-native DAG
# (``airflow.sdk.definitions._internal.templater.create_template_env``) and their Jinja
# bases. A subclass may change how source text is read, so it gets the full rendering.
_KNOWN_ENVIRONMENT_NAMES = frozenset(
    {
        "airflow.sdk.definitions._internal.templater.SandboxedEnvironment",
        "jinja2.sandbox.SandboxedEnvironment",
        "jinja2.environment.Environment",
    }
)

# Jinja turns "\r\n" and "\r" into the environment's newline sequence and drops one
# trailing newline unless keep_trailing_newline is set.
_LINE_BREAKS = ("\n", "\r")


def renders_unchanged(text: str, env: jinja2.Environment) -> bool:
    """Return True when rendering ``text`` as a template of ``env`` returns ``text`` itself.

    That is the case when the text contains no delimiter or line prefix of the environment and
    no line break, the environment is a plain sandboxed (non-native) one, and no
    extension rewrites the source or its tokens. Native rendering is excluded because it
    turns text such as ``123`` into a number.
    """
    if not _is_known_environment(env):
        return False
    if any(line_break in text for line_break in _LINE_BREAKS):
        return False
    markers = [env.block_start_string, env.variable_start_string, env.comment_start_string]
    markers += [prefix for prefix in (env.line_statement_prefix, env.line_comment_prefix) if prefix]
    if any(marker in text for marker in markers):
        return False
    return all(_leaves_source_alone(extension) for extension in env.extensions.values())


def _is_known_environment(env: jinja2.Environment) -> bool:
    env_type = type(env)
    return f"{env_type.__module__}.{env_type.__qualname__}" in _KNOWN_ENVIRONMENT_NAMES


def _leaves_source_alone(extension: Extension) -> bool:
    extension_type = type(extension)
    return (
        extension_type.preprocess is Extension.preprocess
        and extension_type.filter_stream is Extension.filter_stream
    )
