"""SSH to guests through fabric/paramiko, always against the lab's pinned host keys."""

from __future__ import annotations

import logging
import re
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Connection, ThreadingGroup
from fabric.exceptions import GroupException
from fabric.group import GroupResult
from fabric.runners import Result

from .errors import RemoteError

# The forward accepts TCP before sshd is up; paramiko logs each banner error loudly.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

RETRYABLE = (OSError, EOFError, paramiko.SSHException, socket.timeout)


@dataclass(frozen=True)
class Endpoint:
    """How to reach one node: a loopback port, the lab's user key and known_hosts."""

    node: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    host: str = "127.0.0.1"


class HostKeyMismatch(RemoteError):
    """The guest presented a host key other than the pinned one."""


def connect(endpoint: Endpoint, timeout: float = 10.0) -> Connection:
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


def open_checked(endpoint: Endpoint, timeout: float = 10.0) -> Connection:
    connection = connect(endpoint, timeout)
    try:
        connection.open()
    except paramiko.BadHostKeyException:
        connection.close()
        raise HostKeyMismatch(
            f"node {endpoint.node}: the host key on port {endpoint.port} is not the pinned one"
        ) from None
    except Exception:
        connection.close()
        raise
    return connection


def wait_for_ssh(
    endpoint: Endpoint, timeout: float, still_booting: Callable[[], str | None]
) -> Connection:
    """Retry until sshd answers and accepts the lab's key.

    `still_booting` returns a reason to give up (the VM died), or None to keep waiting.
    A wrong host key is never retried: that is an attack or a mix-up, not a slow boot.
    """
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            return open_checked(endpoint, timeout=10.0)
        except HostKeyMismatch:
            raise
        except RETRYABLE as error:
            last_error = f"{type(error).__name__}: {error}".strip()
        problem = still_booting()
        if problem:
            raise RemoteError(f"node {endpoint.node}: {problem}")
        time.sleep(1.0)
    raise RemoteError(f"node {endpoint.node}: SSH not ready after {timeout:.0f} s ({last_error})")


# What `mktemp -d /tmp/PREFIX.XXXXXXXXXX` prints; anything else is not used as a path.
TEMP_DIR = re.compile(r"/tmp/(?P<prefix>[a-z-]+)\.[A-Za-z0-9]{10}")


def remote_tempdir(connection: Connection, node: str, prefix: str) -> str:
    """A fresh private (0700) directory on the node, made by the node's own mktemp.

    Fixed names in the node's /tmp could be made in advance, or be symlinks, by any local
    user; a mktemp directory cannot, and nothing but lab's user can write in it.
    """
    result = connection.run(f"mktemp -d /tmp/{shlex.quote(prefix)}.XXXXXXXXXX", hide=True, warn=True,
                            in_stream=False)
    path = (result.stdout or "").strip()
    match = TEMP_DIR.fullmatch(path)
    if result.exited != 0 or match is None or match.group("prefix") != prefix:
        detail = (result.stderr or result.stdout or "no output").strip().splitlines()[-1:] or ["no output"]
        raise RemoteError(f"node {node}: mktemp -d failed: {detail[0]}")
    return path


def run(connection: Connection, command: str, timeout: float | None = None) -> tuple[int, str, str]:
    result = connection.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
    return result.exited, result.stdout, result.stderr


def run_on_all(endpoints: list[Endpoint], command: str) -> dict[str, Result | Exception]:
    """Run one command on many nodes at once (fabric's ThreadingGroup).

    Returns each node's result, or the exception that kept it from running, by node name
    in the order given.
    """
    connections = {endpoint.node: connect(endpoint) for endpoint in endpoints}
    group = ThreadingGroup.from_connections(list(connections.values()))
    try:
        results: GroupResult = group.run(command, hide=True, warn=True, in_stream=False)
    except GroupException as failure:  # some nodes could not be reached at all
        results = failure.result
    finally:
        group.close()
    return {node: results[connection] for node, connection in connections.items()}
