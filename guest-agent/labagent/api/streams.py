"""The framed output streams that logs, attach and exec send: stream type, frames, batching."""

from __future__ import annotations

from collections.abc import Iterator

from ..containers.logs import Entry, frame
from .http import Request

MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def stream_type(req: Request) -> str:
    """Docker names the framed stream type from API 1.42 on; older clients expect raw-stream."""
    if req.version and tuple(int(p) for p in req.version.split(".")) < (1, 42):
        return RAW
    return MUX


def entry_bytes(entry: Entry, stdout: bool, stderr: bool, timestamps: bool) -> bytes:
    """One log entry as a frame, or nothing when its stream was not asked for."""
    if (entry.stream == 1 and not stdout) or (entry.stream == 2 and not stderr):
        return b""
    prefix = entry.time.encode() + b" " if timestamps else b""
    return frame(entry.stream, prefix + entry.data)


def batches(pieces: Iterator[bytes], size: int = 64 << 10) -> Iterator[bytes]:
    """Frames joined into writes of about `size` bytes: a chunk per write, not per line."""
    batch: list[bytes] = []
    held = 0
    for piece in pieces:
        batch.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)
