"""An attached client's input on its way to the container's stdin, as dockerd's attach passes it.

- With a TTY the input is scanned for the detach keys; they, or the client's end of input,
  end the client's session and leave the container running (a terminal has no end of input).
- Without a TTY and with StdinOnce, the client's end of input closes the container's stdin,
  and the session goes on with the output until the container exits.
- Without a TTY or StdinOnce, the client's end of input ends its session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .detachkeys import Scanner
from .execio import Input
from .stdio import StdinPipe


class AttachInput:
    def __init__(self, source: Input, pipe: StdinPipe, tty: bool, stdin_once: bool, keys: bytes,
                 on_end: Callable[[], None], on_detach: Callable[[], object]) -> None:
        self.source, self.pipe = source, pipe
        self.tty, self.stdin_once = tty, stdin_once
        self.scanner = Scanner(keys) if tty else None
        self.on_end, self.on_detach = on_end, on_detach
        self.ended = False  # the client's session is over (the output stops too)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attach-stdin", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self.source.read()
            if self._stopping.is_set():
                return
            if not data:
                if not self.tty and self.stdin_once:
                    self.pipe.end()
                else:
                    self._end()
                return
            detached = False
            if self.scanner is not None:
                data, detached = self.scanner.feed(data)
            if data and not self.pipe.write(data, self._stopping.is_set):
                return
            if detached:
                self.on_detach()
                self._end()
                return

    def _end(self) -> None:
        self.ended = True
        self.source.hang_up()
        self.on_end()

    def stop(self) -> None:
        """The session is over (the container exited or the client went): stop reading."""
        self._stopping.set()
        self.source.stop()
        self._thread.join()
