"""`${VAR}` and `${VAR:-default}` in a lab file, expanded inside parsed string values.

Expansion happens after YAML parsing, one scalar at a time: a variable's value is text in
that one field, so it can never add keys, nodes or structure, and a commented-out
reference is never seen. Mapping keys are not expanded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .errors import LabFileError

REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
# Aliases let a small file name one list many times over; walking it is bounded instead.
MAX_VALUES = 100_000


def expand(tree: Any, source: str, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of TREE (parsed YAML) with every reference in its string values replaced."""
    env = os.environ if environ is None else environ
    budget = [MAX_VALUES]

    def walk(value: Any, where: str) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise LabFileError(f"{source}: more than {MAX_VALUES} values once YAML aliases are expanded")
        if isinstance(value, str):
            return expand_string(value, source, where, env)
        if isinstance(value, dict):
            return {key: walk(item, _join(where, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, _join(where, index)) for index, item in enumerate(value)]
        return value

    return walk(tree, "")


def expand_string(text: str, source: str, where: str, env: Mapping[str, str]) -> str:
    """As a shell: an unset (or empty) VAR takes the default; with no default it is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        value = env.get(name, "")
        if value != "":
            return value
        if default is not None:
            return default
        raise LabFileError(f"{source}: {where or 'the file'}: ${{{name}}} is not set and has no default")

    return REFERENCE.sub(substitute, text)


SIMPLE_KEY = re.compile(r"[A-Za-z0-9_.:-]+")


def key_text(key: object) -> str:
    """A mapping key as an error shows it: quoted unless plain, so it stays on one line."""
    if isinstance(key, int) or (isinstance(key, str) and SIMPLE_KEY.fullmatch(key)):
        return str(key)
    return repr(key)


def _join(where: str, key: object) -> str:
    return f"{where}.{key_text(key)}" if where else key_text(key)
