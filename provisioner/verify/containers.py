"""A testinfra backend for a container inside a node, reached through the engine's exec."""

from __future__ import annotations

import shlex
from typing import Any

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult


class LabContainerBackend(BaseBackend):  # type: ignore[misc]
    """Runs each command as `labctl exec NAME sh -c CMD` on the node's own testinfra host."""

    NAME = "labcontainer"

    def __init__(self, node: testinfra.host.Host, container: str, **kwargs: Any) -> None:
        super().__init__(container, **kwargs)
        self.node = node
        self.container = container

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        command = self.get_command(command, *args)
        inner = f"labctl exec {shlex.quote(self.container)} sh -c {shlex.quote(command)}"
        out = self.node.run(inner)
        return self.result(out.rc, self.encode(command), out.stdout_bytes, out.stderr_bytes)


def container_host(node: testinfra.host.Host, container: str) -> testinfra.host.Host:
    return testinfra.host.Host(LabContainerBackend(node, container))
