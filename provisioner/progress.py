"""How long-running use cases report progress; the CLI renders it with rich."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def phase(self, node: str, text: str) -> None:
        """A node (or "lab" for the whole lab) entered a new phase."""

    def done(self, node: str, text: str) -> None:
        """A node finished, successfully or not."""

    def note(self, text: str) -> None:
        """A one-off remark for the user, such as the acceleration chosen."""


class SilentReporter:
    def phase(self, node: str, text: str) -> None:
        pass

    def done(self, node: str, text: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass
