"""Container logs in Docker's json-file format, with followers woken as lines arrive."""

from __future__ import annotations

import json
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .fsutil import parse_rfc3339, rfc3339

STDOUT, STDERR = 1, 2
STREAMS = {STDOUT: "stdout", STDERR: "stderr"}


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed-stream header: [stream, 0, 0, 0, length (big-endian u32)]."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def read_frames(read: Callable[[int], bytes]) -> Iterator[tuple[int, bytes]]:
    """Split a multiplexed stream back into (stream, data) pairs."""
    while True:
        header = _read_exact(read, 8)
        if len(header) < 8:
            return
        stream, size = struct.unpack(">BxxxL", header)
        yield stream, _read_exact(read, size)


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = read(size - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return chunks


@dataclass
class Entry:
    stream: int
    data: bytes
    time: str


def _parse(line: bytes) -> Entry | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    stream = STDERR if rec.get("stream") == "stderr" else STDOUT
    return Entry(stream, rec.get("log", "").encode("utf-8", "surrogateescape"), rec.get("time", ""))


class LogFile:
    """One container's log: appended by its pump thread, read by the logs/attach endpoints."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        path.touch(exist_ok=True)

    def append(self, stream: int, data: bytes) -> None:
        """Store data as one json line per text line (Docker keeps the newline in "log")."""
        now = rfc3339()
        lines = data.splitlines(keepends=True)
        text = b"".join(
            json.dumps({"log": line.decode("utf-8", "surrogateescape"), "stream": STREAMS[stream],
                        "time": now}).encode() + b"\n"
            for line in lines
        )
        with self._cond:
            with open(self.path, "ab") as handle:
                handle.write(text)
            self._cond.notify_all()

    def poke(self) -> None:
        """Wake followers so they re-check whether the container is done."""
        with self._cond:
            self._cond.notify_all()

    def size(self) -> int:
        return os.path.getsize(self.path) if self.path.exists() else 0

    def read(self, tail: int | None = None, since: float = 0, offset: int = 0) -> tuple[list[Entry], int]:
        """Entries from offset on (the last `tail` of them), and the offset after them."""
        entries: deque[Entry] | list[Entry] = deque(maxlen=tail) if tail is not None else []
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                while True:
                    line = handle.readline()
                    if not line.endswith(b"\n"):
                        break
                    offset += len(line)
                    entry = _parse(line)
                    if entry and (not since or parse_rfc3339(entry.time) >= since):
                        entries.append(entry)
        except FileNotFoundError:
            pass
        return list(entries), offset

    def follow(self, offset: int, done: Callable[[], bool], gone: Callable[[], bool],
               poll: float = 0.5) -> Iterator[Entry]:
        """Yield entries after offset until done() (the container's run is over) or the client goes.

        The pump drains a container's output before its exit is recorded, so once done()
        holds, one last read sees everything.
        """
        while True:
            entries, offset = self.read(offset=offset)
            yield from entries
            with self._cond:
                if self.size() > offset:
                    continue
                finished = done()
                if not finished:
                    self._cond.wait(poll)
            if finished:
                yield from self.read(offset=offset)[0]
                return
            if gone():
                return


def timestamp_prefix(entry: Entry) -> bytes:
    return entry.time.encode() + b" "
