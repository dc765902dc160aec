"""A node's engine API from the host: one HTTP request per SSH channel, bridged to its socket.

The channel runs socat on the node against the engine's root-only socket, as `lab docker`
does, so a request travels as the engine's own HTTP with a JSON body: no shell and no
labctl flags parse what it carries, and the node starts no Python for it.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from labagent.contract import API_VERSION, SOCKET

from .errors import EngineApiError
from .remote.seam import Channel, NodeShell

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)
SAFE_PATH = re.compile(r"/[A-Za-z0-9/._-]+")  # no quoting needed in the shell or a socat address


def bridge_command(linger: int, idle: int | None = None, socket_path: str = SOCKET) -> str:
    """socat as root between a channel's stdio and the engine's socket, ending when either ends.

    LINGER (-t): how long the answer keeps flowing after one side's end-of-file (the docker
    CLI half-closes a hijacked stream at once). IDLE (-T): after how many silent seconds the
    bridge ends, so a request that hangs ends too.

    sshd sends the channel's end-of-file only once every holder of the command's stdout and
    stderr pipes has closed them. `sudo socat` never gets there while the client keeps its
    side open (docker-py does not half-close): sudo's parent holds both pipes until socat
    exits, and socat waits for the client's end-of-file. So the login user's socat holds the
    channel's stdio alone, stderr is /dev/null, and it closes its stdout (shut-close) when the
    root socat it runs over a socket pair shuts its side down (shut-down), which the root
    socat does the moment the engine closes: the client reads the end of the reply at once.
    """
    if not SAFE_PATH.fullmatch(socket_path):
        raise ValueError(f"engine socket path {socket_path!r} needs quoting in a socat address")
    timing = f"-t {linger}" + ("" if idle is None else f" -T {idle}")
    inner = f"sudo -n socat {timing} -\\,shut-down UNIX-CONNECT\\:{socket_path}"
    return f"exec socat {timing} -,shut-close 'EXEC:{inner}' 2>/dev/null"


# The 300 s bound a container's start had as an SSH command (`labctl run`).
REQUEST_BRIDGE = bridge_command(5, idle=300)


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # the decoded JSON, None for an empty body


class _ChannelReader(io.RawIOBase):
    """A channel's incoming bytes as a raw stream, for http.client to buffer and parse."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._channel.recv(len(view))
        view[: len(data)] = data
        return len(data)


class _ChannelSocket:
    """What http.client.HTTPResponse reads a reply through: makefile() alone."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def makefile(self, mode: str, buffering: int | None = None) -> io.BufferedReader:
        return io.BufferedReader(_ChannelReader(self._channel))


def encode(method: str, path: str, query: dict[str, str] | None = None, body: object = None) -> bytes:
    """The request as bytes: HTTP/1.1, closed after its reply, with a JSON body if any."""
    target = f"/v{API_VERSION}{path}" + (f"?{urlencode(query)}" if query else "")
    data = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close", f"Content-Length: {len(data)}"]
    if body is not None:
        head.append("Content-Type: application/json")
    return "".join(f"{line}\r\n" for line in head).encode() + b"\r\n" + data


def request(shell: NodeShell, method: str, path: str, query: dict[str, str] | None = None,
            body: object = None) -> Reply:
    """Send one request to the node's engine; its reply, or EngineApiError naming the node."""
    what = f"node {shell.node}: {method} {path}"
    log.debug("engine %s: %s %s %s", shell.node, method, path, query or "")
    channel = shell.channel(REQUEST_BRIDGE)
    try:
        data = encode(method, path, query, body)
        while data:
            data = data[channel.send(data):]
        # Only makefile() is used of a socket: the channel stands in for one.
        response = http.client.HTTPResponse(cast(socket.socket, _ChannelSocket(channel)), method=method)
        response.begin()
        text = response.read()
    except (http.client.HTTPException, OSError, EOFError) as error:
        reason = f"no answer from the engine ({type(error).__name__}: {error})"
        raise EngineApiError(f"{what}: {reason}", reason) from error
    finally:
        channel.close()
    try:
        decoded = json.loads(text) if text.strip() else None
    except ValueError:
        decoded = text.decode(errors="replace").strip()
    log.debug("engine %s: %s %s: %s", shell.node, method, path, response.status)
    if response.status >= 400:
        message = decoded.get("message") if isinstance(decoded, dict) else None
        reason = str(message or decoded or response.reason)
        raise EngineApiError(f"{what}: {response.status} {reason}", reason, response.status)
    return Reply(response.status, decoded)
