"""The client's side of a hijacked connection as input: what it sends after the 101/200 reply.

The handler's rfile is a BufferedReader that may already hold bytes the client sent right
behind its request (docker-py and the CLI write stdin as soon as the upgrade is answered), so
input is read through it, never from the socket beside it. Shutting the socket's read side
wakes a pending read when the session ends first.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios
import time

from .http import Request

CHUNK = 64 << 10
HEAD_READ_WAIT = 1.0  # seconds, at most, for the client to read the reply's head


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


def wait_for_head_read(sock: socket.socket, limit: float = HEAD_READ_WAIT) -> None:
    """Until the client has read the 101/200 head (SIOCOUTQ: nothing of ours left unread).

    docker-py reads the head through http.client's buffered reader, then reads the stream
    from the socket beneath it: bytes that arrived with the head are in that buffer and
    lost. So a stream's first bytes wait until the head is read, for `limit` seconds at
    most; in practice the client is already waiting and this returns at once.
    """
    deadline = time.monotonic() + limit
    while True:
        try:
            pending = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return
        if pending <= 0 or time.monotonic() > deadline:
            return
        time.sleep(0.001)
