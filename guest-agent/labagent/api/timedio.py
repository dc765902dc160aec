"""A connection's read side with two clocks: the longest silence, and a deadline.

A socket timeout alone bounds each recv, so a client that sends one byte every 59 s holds
a request head open for hours; the head needs a deadline over all of its reads. This raw
reader sets the socket's timeout before each recv from both, under the handler's
io.BufferedReader (the stdlib's buffered readline, with the clocks underneath).
"""

from __future__ import annotations

import io
import socket
import time
from typing import Any


class TimedReader(io.RawIOBase):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.quiet: float | None = None  # per recv
        self.deadline: float | None = None  # time.monotonic() by which the reads must be done
        self._head_after_first_byte: float | None = None
        self.started = False  # a byte of the awaited request arrived

    def readable(self) -> bool:
        return True

    def await_request(self, idle: float, head: float) -> None:
        """Wait up to `idle` for a request to begin, then `head` seconds for all of its head."""
        self.quiet, self.deadline = idle, None
        self._head_after_first_byte, self.started = head, False

    def settle(self, quiet: float | None) -> None:
        """No deadline from here on, `quiet` per read and write (None: wait as long as it takes)."""
        self.quiet, self.deadline, self._head_after_first_byte = quiet, None, None
        self._set_timeout(quiet)

    def readinto(self, buffer: Any) -> int:
        timeout = self.quiet
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request head took too long")
            timeout = left if timeout is None else min(timeout, left)
        self._set_timeout(timeout)
        count = self.sock.recv_into(buffer)
        if count and self._head_after_first_byte is not None:
            self.started = True
            self.quiet, self.deadline = None, time.monotonic() + self._head_after_first_byte
            self._head_after_first_byte = None
        return count

    def _set_timeout(self, timeout: float | None) -> None:
        if self.sock.gettimeout() != timeout:  # settimeout costs two fcntl calls
            self.sock.settimeout(timeout)
