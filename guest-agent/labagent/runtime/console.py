"""The pty of a TTY exec, handed over by crun (`--console-socket`), and its window size.

With `terminal: true`, crun makes the pty inside the container and sends its master over the
unix socket named by --console-socket, as one SCM_RIGHTS message, then waits for the process
as usual. The engine listens on that socket in a private directory, takes the master and
relays it: the process's output is read from it, the client's input is written to it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import termios
import threading
from pathlib import Path

from ..errors import EngineError
from ..fsutil import rmtree

MAX_SIZE = 65535  # struct winsize holds unsigned shorts


class ConsoleSocket:
    """A listening unix socket that receives one pty master.

    Its directory is made by mkdtemp (mode 0700, the engine's own), under the system's short
    temporary directory: a socket path must fit in 108 bytes, and bundle paths can be long.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lab-tty-"))
        self.path = self.dir / "console.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind(str(self.path))
            self.listener.listen(1)
        except OSError as exc:
            self.close()
            raise EngineError(f"cannot listen for the exec's terminal: {exc}") from None
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        """crun's connection (call once the listener is readable); the master follows on it."""
        conn, _ = self.listener.accept()
        self.conn = conn
        return conn

    def take_master(self) -> int:
        """The pty master crun sent on the accepted connection (call once it is readable)."""
        assert self.conn is not None
        try:
            _, fds, _, _ = socket.recv_fds(self.conn, 1024, 1, socket.MSG_CMSG_CLOEXEC)
        except OSError as exc:
            raise EngineError(f"cannot receive the exec's terminal: {exc}") from None
        if not fds:
            raise EngineError("crun closed the console socket without sending a terminal")
        master = fds[0]
        if not os.isatty(master):
            os.close(master)
            raise EngineError("crun sent a console that is not a terminal")
        return master

    def close(self) -> None:
        for sock in (self.conn, getattr(self, "listener", None)):
            if sock is not None:
                sock.close()
        rmtree(self.dir)


def set_size(fd: int, height: int, width: int) -> None:
    """TIOCSWINSZ on the pty: the process gets SIGWINCH and reads the new size."""
    with contextlib.suppress(OSError):  # the pty is gone: nothing left to size
        termios.tcsetwinsize(fd, (height, width))


def read_master(fd: int, size: int = 65536) -> bytes | None:
    """Output from the master; b"" once every slave is closed (Linux says EIO); None: not now."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return None
    except OSError:
        return b""


class Pty:
    """The master of a TTY exec, sized when it arrives and on each resize after (thread-safe)."""

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        self._lock = threading.Lock()
        self.fd: int | None = None
        self.size = size  # (height, width), applied once the master is here

    def adopt(self, fd: int) -> None:
        with self._lock:
            self.fd = fd
            if self.size:
                set_size(fd, *self.size)

    def resize(self, height: int, width: int) -> None:
        with self._lock:
            self.size = (height, width)
            if self.fd is not None:
                set_size(self.fd, height, width)

    def close(self) -> None:
        with self._lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
