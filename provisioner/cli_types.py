"""Click parameter types for lab and node names, checked before a command body runs.

A bad name is bad input: exit status 2 and one line on stderr, like every other error
`lab` reports, rather than click's usage block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import click
from rich.markup import escape

from . import names
from .console import err_console
from .errors import UserInputError


class BadName(click.BadParameter):
    """click's BadParameter (exit status 2), shown as lab's one-line error."""

    def show(self, file: IO[Any] | None = None) -> None:
        err_console.print(f"[red]error:[/red] {escape(self.message)}", highlight=False, soft_wrap=True)


if TYPE_CHECKING:  # generic in newer click only; click>=8.1 is allowed
    StringType = click.ParamType[str, str]
else:
    StringType = click.ParamType


class NameType(StringType):
    def __init__(self, name: str, check: Callable[[str], str]) -> None:
        self.name = name
        self.check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return self.check(value)
        except UserInputError as error:
            raise BadName(str(error), ctx, param) from None


LAB_NAME = NameType("lab", names.lab_name)
NODE_NAME = NameType("node", names.node_name)
