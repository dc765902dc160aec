"""One exec's bytes on the move: its output to the client, the client's input to its stdin.

The output side runs in the caller's thread (the connection's): a selector over crun's
stdout and stderr pipes and, for a TTY, the console socket and then the pty master. The
input side, when the exec attached stdin, is a thread that copies what the client sends.

As in Docker: without a TTY the client's end of input (its half-close) closes the process's
stdin; with a TTY it ends the client's session instead (the process keeps running, as after
the detach keys), since a terminal has no end of input to pass on.
"""

from __future__ import annotations

import logging
import os
import select
import selectors
import subprocess
import threading
from collections.abc import Callable
from typing import Protocol

from ..errors import EngineError
from ..runtime.console import ConsoleSocket, Pty, read_master
from .detachkeys import Scanner
from .logs import STDERR, STDOUT

log = logging.getLogger(__name__)
Sink = Callable[[int, bytes], None]
_LISTEN, _CONN, _MASTER = -1, -2, -3
WRITE_POLL = 0.5  # seconds between looks at the stop flag while the process's stdin is full


class Input(Protocol):
    """The client's side of a hijacked connection, as the exec reads it."""

    def read(self) -> bytes:
        """The next bytes the client sent; b"" at its end of input. Blocks."""
        ...

    def stop(self) -> None:
        """Wake a pending read() (it returns b""): the session is over."""
        ...

    def hang_up(self) -> None:
        """End the client's connection both ways (a detach)."""
        ...


class Delivery:
    """Pass output on until the client hangs up (or detaches), then drop it."""

    def __init__(self, sink: Sink, stdout: bool = True, stderr: bool = True) -> None:
        self.sink = sink
        self.wanted = {STDOUT: stdout, STDERR: stderr}
        self.broken = False

    def __call__(self, stream: int, data: bytes) -> None:
        if self.broken or not self.wanted.get(stream, False):
            return
        try:
            self.sink(stream, data)
        except OSError:
            self.broken = True


class ExecIO:
    def __init__(self, proc: subprocess.Popen[bytes], deliver: Delivery, stdin: Input | None = None,
                 console: ConsoleSocket | None = None, pty: Pty | None = None,
                 detach_keys: bytes = b"", on_detach: Callable[[], None] | None = None) -> None:
        self.proc = proc
        self.deliver = deliver
        self.stdin = stdin
        self.console = console
        self.pty = pty or Pty()
        self.detach_keys = detach_keys
        self.on_detach = on_detach
        self.detached = False
        self._stopping = threading.Event()
        self._feeder: threading.Thread | None = None

    def run(self) -> None:
        """Until crun has exited and every output is at its end; then the input side stops."""
        proc = self.proc
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, STDOUT)
        sel.register(proc.stderr, selectors.EVENT_READ, STDERR)
        if self.console is not None:
            sel.register(self.console.listener, selectors.EVENT_READ, _LISTEN)
        elif self.stdin is not None and proc.stdin is not None:
            self._start_feeder(proc.stdin.fileno(), self._close_stdin)
        try:
            self._loop(sel)
        finally:
            sel.close()
            self._stop_feeder()
            proc.stdout.close()
            proc.stderr.close()
            self._close_stdin()
            self.pty.close()

    def _loop(self, sel: selectors.BaseSelector) -> None:
        pipes = 2
        while sel.get_map():
            pending = any(k.data in (_LISTEN, _CONN) for k in sel.get_map().values())
            events = sel.select(0 if pipes == 0 and pending else None)
            if not events:  # crun is gone and never sent a terminal
                for key in [k for k in sel.get_map().values() if k.data in (_LISTEN, _CONN)]:
                    sel.unregister(key.fileobj)
                continue
            for key, _ in events:
                if key.data == _LISTEN:
                    sel.unregister(key.fileobj)
                    assert self.console is not None
                    sel.register(self.console.accept(), selectors.EVENT_READ, _CONN)
                elif key.data == _CONN:
                    sel.unregister(key.fileobj)
                    self._adopt(sel)
                elif key.data == _MASTER:
                    data = read_master(key.fd)
                    if data == b"":
                        sel.unregister(key.fd)
                    elif data:
                        self.deliver(STDOUT, data)
                else:
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        pipes -= 1
                        continue
                    self.deliver(key.data, data)

    def _adopt(self, sel: selectors.BaseSelector) -> None:
        """The master crun sent: read output from it, size it, write the client's input to it."""
        assert self.console is not None
        try:
            master = self.console.take_master()
        except EngineError as exc:  # crun failed on its way: its pipes and log say why
            log.debug("no terminal for the exec: %s", exc.message)
            return
        os.set_blocking(master, False)
        self.pty.adopt(master)
        sel.register(master, selectors.EVENT_READ, _MASTER)
        if self.stdin is not None:
            self._start_feeder(master, self._end_session)

    # input ------------------------------------------------------------------------------
    def _start_feeder(self, fd: int, at_eof: Callable[[], None]) -> None:
        os.set_blocking(fd, False)
        scanner = Scanner(self.detach_keys) if self.console is not None else None
        self._feeder = threading.Thread(target=self._feed, args=(fd, at_eof, scanner),
                                        name="exec-stdin", daemon=True)
        self._feeder.start()

    def _feed(self, fd: int, at_eof: Callable[[], None], scanner: Scanner | None) -> None:
        assert self.stdin is not None
        while True:
            data = self.stdin.read()
            if self._stopping.is_set():
                return
            if not data:
                at_eof()
                return
            detached = False
            if scanner is not None:
                data, detached = scanner.feed(data)
            if data and not self._write_all(fd, data):
                return
            if detached:
                self._detach()
                return

    def _write_all(self, fd: int, data: bytes) -> bool:
        """False once the process's stdin is gone (it exited) or the session is over."""
        view = memoryview(data)
        poller = select.poll()  # not select(): the engine's fds may pass FD_SETSIZE
        poller.register(fd, select.POLLOUT)
        while view:
            if self._stopping.is_set():
                return False
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                poller.poll(WRITE_POLL * 1000)
            except OSError:
                return False
        return True

    def _close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass  # the process had stopped reading: nothing more to tell it

    def _end_session(self) -> None:
        """A TTY's end of input: the client's session ends, not the process's input."""
        self._detach(by_keys=False)

    def _detach(self, by_keys: bool = True) -> None:
        """The client leaves; the process runs on, its output drained and dropped."""
        self.detached = True
        self.deliver.broken = True
        if by_keys and self.on_detach is not None:
            self.on_detach()
        assert self.stdin is not None
        self.stdin.hang_up()

    def _stop_feeder(self) -> None:
        self._stopping.set()
        if self._feeder is not None:
            assert self.stdin is not None
            self.stdin.stop()
            self._feeder.join()
