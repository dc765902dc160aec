"""Jinja2 over templates/: a missing variable is an error, never an empty string."""

from __future__ import annotations

import shlex
from functools import lru_cache
from typing import Any

import jinja2

from .paths import templates_dir


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """`{{ value | sh }}` quotes VALUE as one shell word, for templates that are shell scripts."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
