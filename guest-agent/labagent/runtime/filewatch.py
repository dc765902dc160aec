"""Sleep until a file in a directory is written: inotify through ctypes, no polling.

Waiting for crun's pid file by re-reading it every few milliseconds cost the one vCPU
the very time crun needed to start the container; a blocked poll(2) costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import select
from pathlib import Path

from ..libc import LIBC, last_error

IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x8, 0x80, 0x100
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC


class DirWatch:
    """Wakes wait() when something in `directory` is written, created or renamed in."""

    def __init__(self, directory: Path) -> None:
        self.fd = LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(last_error(), "inotify_init1")
        mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
        if LIBC.inotify_add_watch(self.fd, str(directory).encode(), mask) < 0:
            err = last_error()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {directory}")
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)

    def wait(self, timeout: float) -> None:
        """Return after the next event (or at once if one is pending), or after timeout."""
        if self._poll.poll(max(0, int(timeout * 1000))):
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 65536)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
