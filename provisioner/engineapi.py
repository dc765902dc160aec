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


def bridge_command(linger: int, idle: int | None = None) -> str:
    """socat as root between a channel's stdio and the engine's socket.

    LINGER (-t): how long the answer keeps flowing after one side's end-of-file. IDLE (-T):
    after how many silent seconds the bridge ends, so a request that hangs ends too.
    """
    timeout = "" if idle is None else f" -T {idle}"
    return f"sudo -n socat -t {linger}{timeout} - UNIX-CONNECT:{SOCKET}"


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
