"""The seam for running commands on a node: one result type, one shell Protocol.

Every use case that talks to a guest (boot, agent deployment, exec, status, push, the
report, the docker proxy) goes through a `NodeShell`; only provisioner.remote.ssh knows
about paramiko and fabric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import LabError, RemoteError


@dataclass(frozen=True)
class Endpoint:
    """How to reach one node: a loopback port, the lab's user key and known_hosts."""

    node: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class CommandResult:
    """What a command on a node did: its exit code and its output."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_line(self) -> str:
        """The last line of stderr (of stdout when stderr is empty): what a failure says last."""
        lines = (self.stderr or self.stdout).strip().splitlines()
        return lines[-1] if lines else "no output"

    def check(self, failure: str, error: type[LabError] = RemoteError) -> CommandResult:
        """This result if the command succeeded; else ERROR("FAILURE: <last line>")."""
        if not self.ok:
            raise error(f"{failure}: {self.last_line()}")
        return self


class Channel(Protocol):
    """A byte stream to a command running on a node (a paramiko Channel, in production)."""

    def send(self, data: bytes) -> int: ...
    def recv(self, nbytes: int) -> bytes: ...
    def shutdown_write(self) -> None: ...
    def close(self) -> None: ...


class NodeShell(Protocol):
    """One open connection to a node, kept for the life of a command.

    Failures to reach the node are provisioner.errors.RemoteError (NodeUnreachable when
    the connection could not be made or broke off), with the transport's error as cause.
    """

    @property
    def node(self) -> str: ...

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a shell command line; a non-zero exit is a result, not an error."""
        ...

    def put(self, source: bytes | Path, remote: str) -> None:
        """Write bytes, or copy a host file, to a path on the node."""
        ...

    def channel(self, command: str) -> Channel:
        """Start COMMAND with its stdin and stdout as a byte stream (the docker bridge)."""
        ...

    def close(self) -> None: ...


Connector = Callable[[Endpoint], NodeShell]
"""Opens a shell to an endpoint; raises HostKeyMismatch or NodeUnreachable."""
