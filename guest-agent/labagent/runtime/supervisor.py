"""One thread for every running container: pump their FIFOs into the logs, notice shims exit.

A thread per container cost a thread start (about 3 ms under TCG, beside crun on the one
vCPU) in every container start, and a thread for as long as each container ran. This one
polls every container's stdout and stderr FIFOs and a pidfd for each shim; watch() hands
it a new container through a wake-up pipe. When a shim is gone, its FIFOs are drained and
on_exit runs in a short-lived thread of its own, so cleanup never holds up the logs of
the other containers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..containers.logs import STDERR, STDOUT, LogFile

log = logging.getLogger(__name__)
READ_SIZE = 65536


@dataclass
class Watched:
    cid: str
    logfile: LogFile
    on_exit: Callable[[], None]
    streams: dict[int, int] = field(default_factory=dict)  # fifo fd -> STDOUT or STDERR
    pidfd: int = -1


class Supervisor:
    def __init__(self) -> None:
        self._poller = select.poll()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller.register(self._wake_read, select.POLLIN)
        self._lock = threading.Lock()
        self._pending: list[Watched] = []
        self._by_fd: dict[int, Watched] = {}
        self._thread: threading.Thread | None = None

    def watch(self, cid: str, shim_pid: int, fifos: tuple[Path, Path], logfile: LogFile,
              on_exit: Callable[[], None]) -> None:
        """Pump this container's output until its shim exits, then call on_exit."""
        watched = Watched(cid, logfile, on_exit)
        for stream, fifo in zip((STDOUT, STDERR), fifos, strict=True):
            with contextlib.suppress(OSError):
                watched.streams[os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)] = stream
        try:
            watched.pidfd = os.pidfd_open(shim_pid)
        except OSError:  # already gone: drain what it left, then on_exit
            watched.pidfd = -1
        with self._lock:
            self._pending.append(watched)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
                self._thread.start()
        with contextlib.suppress(BlockingIOError):  # a full pipe already holds a wake-up
            os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        while True:
            try:
                events = self._poller.poll()
            except InterruptedError:
                continue
            for fd, mask in events:
                try:
                    self._handle(fd, mask)
                except Exception:
                    log.exception("supervisor: handling fd %d failed", fd)

    def _handle(self, fd: int, mask: int) -> None:
        if fd == self._wake_read:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)
            with self._lock:
                pending, self._pending = self._pending, []
            for watched in pending:
                self._adopt(watched)
            return
        owner = self._by_fd.get(fd)
        if owner is None:
            return
        if fd == owner.pidfd:
            self._finish(owner)
        elif not self._read(owner, fd) and mask & select.POLLHUP:
            self._poller.unregister(fd)  # no writer left for now; the shim's exit ends it

    def _adopt(self, watched: Watched) -> None:
        for fd in watched.streams:
            self._by_fd[fd] = watched
            self._poller.register(fd, select.POLLIN)
        if watched.pidfd >= 0:
            self._by_fd[watched.pidfd] = watched
            self._poller.register(watched.pidfd, select.POLLIN)
        else:
            self._finish(watched)

    def _finish(self, watched: Watched) -> None:
        """The shim is gone: drain and close its FIFOs, then clean up in a thread of its own."""
        for fd in [*watched.streams, watched.pidfd]:
            if fd < 0:
                continue
            if fd in watched.streams:
                while self._read(watched, fd):
                    pass
            with contextlib.suppress(KeyError):
                self._poller.unregister(fd)
            self._by_fd.pop(fd, None)
            os.close(fd)
        threading.Thread(target=self._exited, args=(watched,), name=f"exit-{watched.cid[:12]}",
                         daemon=True).start()

    @staticmethod
    def _exited(watched: Watched) -> None:
        try:
            watched.on_exit()
        except Exception:
            log.exception("cleanup after the exit of %s failed", watched.cid[:12])

    @staticmethod
    def _read(watched: Watched, fd: int) -> bool:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as exc:
            log.warning("reading the output of %s: %s", watched.cid[:12], exc)
            return False
        if data:
            watched.logfile.append(watched.streams[fd], data)
        return bool(data)
