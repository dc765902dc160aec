"""One thread per running container: pump its FIFOs into the log, notice when the shim exits."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path

from .logs import STDERR, STDOUT, LogFile

log = logging.getLogger(__name__)


class Supervisor(threading.Thread):
    def __init__(self, cid: str, shim_pid: int, fifos: tuple[Path, Path], logfile: LogFile,
                 on_exit: Callable[[], None]) -> None:
        super().__init__(name=f"sup-{cid[:12]}", daemon=True)
        self.shim_pid = shim_pid
        self.fifos = fifos
        self.logfile = logfile
        self.on_exit = on_exit

    def run(self) -> None:
        try:
            self._pump()
        except Exception:
            log.exception("log pump for shim %s failed", self.shim_pid)
        finally:
            self.on_exit()

    def _pump(self) -> None:
        streams: dict[int, int] = {}
        for stream, fifo in zip((STDOUT, STDERR), self.fifos, strict=True):
            with contextlib.suppress(OSError):
                streams[os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)] = stream
        try:
            pidfd = os.pidfd_open(self.shim_pid)
        except OSError:  # already gone: just drain what it left
            pidfd = -1
        try:
            poller = select.poll()
            for fd in streams:
                poller.register(fd, select.POLLIN)
            if pidfd >= 0:
                poller.register(pidfd, select.POLLIN)
            while pidfd >= 0:
                for fd, events in poller.poll():
                    if fd == pidfd:
                        pidfd = -1 if self._close(fd) else pidfd
                    elif not self._read(fd, streams[fd]) and events & select.POLLHUP:
                        poller.unregister(fd)
            for fd, stream in streams.items():
                while self._read(fd, stream):
                    pass
        finally:
            for fd in streams:
                os.close(fd)

    @staticmethod
    def _close(fd: int) -> bool:
        os.close(fd)
        return True

    def _read(self, fd: int, stream: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if data:
            self.logfile.append(stream, data)
        return bool(data)
