"""The engine's end of a container's terminal and stdin, which the shim's relay holds.

The relay (runtime/stdiorelay.py) reads the bundle's stdin.fifo and control.fifo. An attach
session opens both read-write, as the relay does: its input then waits in the FIFO when the
container has not started yet (the docker CLI attaches, sends, and only then starts), and no
open ever blocks. A resize is one line on control.fifo, written only to a relay that is there.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..runtime.stdiorelay import CONTROL_FIFO, STDIN_FIFO
from .model import CreateSpec

WRITE_POLL = 0.5  # seconds between looks at the stop flag while the FIFO is full


def apply_terminal(config: dict[str, Any], spec: CreateSpec) -> None:
    """config.json's process for a Tty container: a terminal, its first size, TERM=xterm (as dockerd)."""
    if not spec.tty:
        return
    process = config["process"]
    process["terminal"] = True
    if spec.console_size:
        process["consoleSize"] = {"height": spec.console_size[0], "width": spec.console_size[1]}
    if not any(item.partition("=")[0] == "TERM" for item in process["env"]):
        process["env"] = [*process["env"], "TERM=xterm"]


def _open(path: Path, flags: int) -> int:
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a FIFO")
    return fd


def send_size(bundle: Path, height: int, width: int) -> bool:
    """Tell the relay the window's size; False when no relay holds the FIFO (not running)."""
    try:
        fd = _open(bundle / CONTROL_FIFO, os.O_WRONLY)
    except OSError:  # ENXIO: no reader
        return False
    try:
        os.write(fd, f"size {height} {width}\n".encode())  # one line, under PIPE_BUF: atomic
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class StdinPipe:
    """One attach session's way into its container's stdin."""

    def __init__(self, bundle: Path) -> None:
        self.data = _open(bundle / STDIN_FIFO, os.O_RDWR)
        try:
            self.control = _open(bundle / CONTROL_FIFO, os.O_RDWR)
        except OSError:
            os.close(self.data)
            raise

    def write(self, data: bytes, stopped: Callable[[], bool]) -> bool:
        """All of data, waiting while the FIFO is full; False once stopped() holds."""
        view = memoryview(data)
        poller = select.poll()  # not select(): the engine's fds may pass FD_SETSIZE
        poller.register(self.data, select.POLLOUT)
        while view:
            if stopped():
                return False
            try:
                view = view[os.write(self.data, view):]
            except BlockingIOError:
                poller.poll(WRITE_POLL * 1000)
            except OSError:
                return False
        return True

    def end(self) -> None:
        """StdinOnce: the process's stdin closes once the relay has passed on what came before."""
        with contextlib.suppress(OSError):
            os.write(self.control, b"eof\n")

    def close(self) -> None:
        for fd in (self.data, self.control):
            with contextlib.suppress(OSError):
                os.close(fd)
