"""Rich rendering of progress and tables, kept out of the use cases."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from functools import wraps
from types import TracebackType
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.traceback import Traceback

from .errors import LabError

err_console = Console(stderr=True)
out_console = Console()

F = TypeVar("F", bound=Callable[..., Any])

LOGGER = logging.getLogger("provisioner")
_debug_handler: logging.Handler | None = None


def set_debug(enabled: bool) -> None:
    """`lab --debug`: log SSH commands and libvirt calls to stderr, and show errors' causes."""
    global _debug_handler
    if _debug_handler is not None:
        LOGGER.removeHandler(_debug_handler)
        _debug_handler = None
    if enabled:
        _debug_handler = RichHandler(console=err_console, show_path=False, markup=False, rich_tracebacks=True)
        LOGGER.addHandler(_debug_handler)
    LOGGER.setLevel(logging.DEBUG if enabled else logging.WARNING)


def debugging() -> bool:
    return _debug_handler is not None


def report_error(error: LabError) -> None:
    """One line; under --debug the traceback and every chained cause come first."""
    if debugging():
        err_console.print(Traceback.from_exception(type(error), error, error.__traceback__))
    err_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)


def reports_errors(function: F) -> F:
    """LabError becomes one line on stderr and its exit code; Ctrl-C exits 130.

    The message is escaped: it quotes user input, and `[/red]` in a name is not markup.
    """

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except LabError as error:
            report_error(error)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class RichReporter:
    """One live line per node (and one for the image): phase and elapsed time."""

    def __init__(self, console: Console = err_console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("[bold]{task.fields[node]:<10}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def _task(self, node: str) -> TaskID:
        with self.lock:
            if node not in self.tasks:
                self.tasks[node] = self.progress.add_task("", node=node, total=1)
            return self.tasks[node]

    def phase(self, node: str, text: str) -> None:
        task = self._task(node)
        if self.progress.tasks[task].finished:
            self.progress.reset(task, total=1)
        self.progress.update(task, description=text)

    def done(self, node: str, text: str) -> None:
        self.progress.update(self._task(node), description=text, completed=1)

    def note(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/dim]")
