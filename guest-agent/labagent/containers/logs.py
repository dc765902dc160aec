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
from typing import IO

from ..fsutil import parse_rfc3339, rfc3339

STDOUT, STDERR = 1, 2
STREAMS = {STDOUT: "stdout", STDERR: "stderr"}
BLOCK = 64 << 10  # what a reader of the log holds at once
# A record longer than this was not written by append() (the pump reads 64 KiB at a time,
# which json-escapes to at most ~400 KiB): readers skip it instead of holding it.
MAX_RECORD = 1 << 20


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


class Cursor:
    """Reads a log forward from an offset, one record at a time, in blocks from disk.

    `offset` is always just past the last complete record read, so a follower resumes
    there; a last line still being written is left for the next read.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset

    def entries(self, since: float = 0, until: int | None = None) -> Iterator[Entry]:
        """The entries from `since` on, up to offset `until` (a snapshot's end) if given."""
        handle = _open(self.path)
        if handle is None:
            return
        with handle:
            handle.seek(self.offset)
            while until is None or self.offset < until:
                line = handle.readline(MAX_RECORD)
                if len(line) == MAX_RECORD and not line.endswith(b"\n"):
                    skipped = _skip_line(handle)  # no record the engine writes is this long
                    if skipped is None:
                        return
                    self.offset += len(line) + skipped
                    continue
                if not line.endswith(b"\n"):
                    return
                self.offset += len(line)
                entry = _parse(line)
                if entry and (not since or parse_rfc3339(entry.time) >= since):
                    yield entry


def _open(path: Path) -> IO[bytes] | None:
    try:
        return open(path, "rb", buffering=BLOCK)
    except FileNotFoundError:  # the container was removed under a reader
        return None


def _skip_line(handle: IO[bytes]) -> int | None:
    """Read past the rest of an over-long line; its length, or None if it has no end yet."""
    count = 0
    while True:
        piece = handle.readline(BLOCK)
        count += len(piece)
        if piece.endswith(b"\n"):
            return count
        if not piece:
            return None


def _lines_backwards(handle: IO[bytes], end: int) -> Iterator[tuple[int, bytes]]:
    """The complete lines before offset `end` (which follows a newline), last first, with offsets.

    Blocks are read from the end towards the start, so a tail costs what it returns, not
    the whole file; an over-long line is skipped, not gathered.
    """
    pos, buf, hi = end, b"", 0  # buf holds the file from pos; buf[:hi] is not yet yielded
    skipping = False
    while True:
        cut = buf.rfind(b"\n", 0, hi - 1) if hi else -1
        if cut >= 0:
            if not skipping and hi - cut - 1 <= MAX_RECORD:
                yield pos + cut + 1, buf[cut + 1:hi]
            skipping, hi = False, cut + 1
            continue
        if pos == 0:
            if hi and not skipping and hi <= MAX_RECORD:
                yield 0, buf[:hi]
            return
        size = min(BLOCK, pos)
        pos -= size
        handle.seek(pos)
        block = handle.read(size)
        if hi > MAX_RECORD:  # no newline in a record's worth: drop what we hold of that line
            buf, hi, skipping = block + buf[hi - 1:hi], len(block) + 1, True
        else:
            buf, hi = block + buf[:hi], len(block) + hi


class LogFile:
    """One container's log: appended by its pump thread, read by the logs/attach endpoints.

    Readers stream it from disk (Cursor, tail_start), so a log of any size costs a reader
    a block and a record, never the file.
    """

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

    def cursor(self, offset: int = 0) -> Cursor:
        return Cursor(self.path, offset)

    def end(self) -> int:
        """The offset just past the last complete record (where a follower of new output starts)."""
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                pos = size
                while pos > 0:
                    step = min(BLOCK, pos)
                    handle.seek(pos - step)
                    cut = handle.read(step).rfind(b"\n")
                    if cut >= 0:
                        return pos - step + cut + 1
                    pos -= step
        except FileNotFoundError:
            pass
        return 0

    def tail_start(self, tail: int, since: float = 0, end: int | None = None) -> int:
        """The offset of the first of the last `tail` entries before `end` (of those from `since` on)."""
        end = self.end() if end is None else end
        if tail <= 0:
            return end
        count = 0
        try:
            with open(self.path, "rb") as handle:
                for start, line in _lines_backwards(handle, end):
                    entry = _parse(line)
                    if entry and (not since or parse_rfc3339(entry.time) >= since):
                        count += 1
                        if count == tail:
                            return start
        except FileNotFoundError:
            pass
        return 0

    def read(self, tail: int | None = None, since: float = 0, offset: int = 0) -> tuple[list[Entry], int]:
        """Entries from offset on (the last `tail` of them) in memory, and the offset after them.

        For small logs and tests; the endpoints stream with cursor() and tail_start().
        """
        cursor = self.cursor(offset)
        entries = deque(cursor.entries(since), maxlen=tail)
        return list(entries), cursor.offset

    def follow(self, offset: int, done: Callable[[], bool], gone: Callable[[], bool],
               poll: float = 0.5) -> Iterator[Entry]:
        """Yield entries after offset until done() (the container's run is over) or the client goes.

        The pump drains a container's output before its exit is recorded, so once done()
        holds, one last read sees everything.
        """
        cursor = self.cursor(offset)
        while True:
            yield from cursor.entries()
            with self._cond:
                if self.size() > cursor.offset:
                    continue
                finished = done()
                if not finished:
                    self._cond.wait(poll)
            if finished:
                yield from cursor.entries()
                return
            if gone():
                return


def timestamp_prefix(entry: Entry) -> bytes:
    return entry.time.encode() + b" "
