"""The node seam over SSH (fabric/paramiko), always against the lab's pinned host keys."""

from __future__ import annotations

import io
import logging
import socket
import time
from pathlib import Path

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut, ThreadException

from ..errors import HostKeyMismatch, NodeUnreachable, RemoteError
from .seam import Channel, CommandResult, Endpoint

log = logging.getLogger(__name__)
# The forward accepts TCP before sshd is up; paramiko logs each banner error loudly.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

# What a connection that is not (yet) there raises: a booting node's sshd, a dropped link.
TRANSPORT_ERRORS = (OSError, EOFError, paramiko.SSHException, socket.timeout)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


class SshShell:
    """A NodeShell on one fabric Connection: opened once, used by every call of a command."""

    def __init__(self, endpoint: Endpoint, connection: Connection) -> None:
        self.endpoint = endpoint
        self._connection = connection

    @property
    def node(self) -> str:
        return self.endpoint.node

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        log.debug("ssh %s: run: %s", self.node, command)
        started = time.monotonic()
        try:
            result = self._connection.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        except (CommandTimedOut, *TRANSPORT_ERRORS, ThreadException) as error:
            # invoke reports a timeout as a ThreadException when closing the channel upset its readers
            if timeout is not None and time.monotonic() - started >= timeout:
                raise RemoteError(f"node {self.node}: a command did not finish in {timeout:.0f} s") from error
            raise NodeUnreachable(f"node {self.node}: SSH broke off: {describe(error)}") from error
        if timeout is not None and time.monotonic() - started >= timeout:
            # invoke sometimes returns instead of raising when its timer closed the channel
            # while a reader thread was at EOF (seen about one run in eight)
            raise RemoteError(f"node {self.node}: a command did not finish in {timeout:.0f} s")
        log.debug("ssh %s: exit %s", self.node, result.exited)
        return CommandResult(result.exited, result.stdout, result.stderr)

    def put(self, source: bytes | Path, remote: str) -> None:
        log.debug("ssh %s: put %s", self.node, remote)
        local: io.BytesIO | str = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        try:
            self._connection.put(local, remote)
        except TRANSPORT_ERRORS as error:
            raise RemoteError(f"node {self.node}: copying to {remote} failed: {describe(error)}") from error

    def channel(self, command: str) -> Channel:
        log.debug("ssh %s: channel: %s", self.node, command)
        transport = self._connection.client.get_transport()
        if transport is None or not transport.is_active():
            raise NodeUnreachable(f"node {self.node}: the SSH connection is closed")
        try:
            channel = transport.open_session(timeout=10)
            channel.exec_command(command)
        except TRANSPORT_ERRORS as error:
            raise NodeUnreachable(f"node {self.node}: no SSH channel: {describe(error)}") from error
        return channel  # type: ignore[no-any-return]

    def close(self) -> None:
        log.debug("ssh %s: close", self.node)
        self._connection.close()


def pinned_connection(endpoint: Endpoint, timeout: float) -> Connection:
    """A fabric Connection that rejects any host key not pinned in the lab's known_hosts."""
    connection = Connection(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        connect_timeout=timeout,
        connect_kwargs={
            "key_filename": [str(endpoint.key)],
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        },
    )
    connection.client.load_host_keys(str(endpoint.known_hosts))
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return connection


def connect(endpoint: Endpoint, timeout: float = 10.0) -> SshShell:
    """The production Connector: an open, pinned connection, or a RemoteError saying why not."""
    log.debug("ssh %s: connecting to %s@%s:%s", endpoint.node, endpoint.user, endpoint.host, endpoint.port)
    connection = pinned_connection(endpoint, timeout)
    try:
        connection.open()
    except paramiko.BadHostKeyException as error:
        connection.close()
        raise HostKeyMismatch(
            f"node {endpoint.node}: the host key on port {endpoint.port} is not the pinned one"
        ) from error
    except TRANSPORT_ERRORS as error:
        connection.close()
        raise NodeUnreachable(f"node {endpoint.node}: SSH to port {endpoint.port}: {describe(error)}") from error
    except BaseException:
        connection.close()
        raise
    return SshShell(endpoint, connection)
