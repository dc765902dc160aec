"""The client's side of a hijacked connection as input: what it sends after the 101/200 reply.

The handler's rfile is a BufferedReader that may already hold bytes the client sent right
behind its request (docker-py and the CLI write stdin as soon as the upgrade is answered), so
input is read through it, never from the socket beside it. Shutting the socket's read side
wakes a pending read when the session ends first.
"""

from __future__ import annotations

import contextlib
import socket

from .http import Request

CHUNK = 64 << 10


class HijackedInput:
    def __init__(self, req: Request) -> None:
        self.rfile = req.handler.rfile
        self.sock: socket.socket = req.handler.connection

    def read(self) -> bytes:
        """The next bytes the client sent; b"" at its half-close, its hang-up or our stop()."""
        try:
            return self.rfile.read1(CHUNK)
        except (OSError, ValueError):  # reset, or the reader closed under us
            return b""

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)

    def hang_up(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
