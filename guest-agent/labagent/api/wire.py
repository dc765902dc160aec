"""HTTP/1.1 message framing, read strictly and within bounds (RFC 9112).

The request head is read line by line against a byte budget before anything is parsed,
and a body's framing is settled from the head alone: one Content-Length of digits, or
exactly `chunked`, never both (two framings of one message are how requests are
smuggled). Whatever does not fit is an EngineError with the status to answer, after which
the connection is closed: what follows an unreadable message cannot be trusted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import Protocol

from ..errors import EngineError
from .limits import Limits

TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^\x00-\x20\x7f]+) HTTP/(\d)\.(\d)")
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than tab (bare CR, NUL)
DIGITS = re.compile(r"[0-9]{1,20}")
HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
# A chunked body may spend on framing (size lines, extensions, CRLFs, trailers) this much
# plus FRAMING_RATIO bytes per byte of data: 1-byte chunks cost 5, a stream of tiny chunks
# with long extensions (many reads for no data) is refused.
FRAMING_ALLOWANCE, FRAMING_RATIO = 16 << 10, 8


class Readable(Protocol):
    """What the readers need of the connection's buffered read side."""

    def readline(self, size: int | None = -1, /) -> bytes: ...

    def read(self, size: int | None = -1, /) -> bytes: ...


@dataclass
class Head:
    method: str
    target: str
    version: str  # "HTTP/1.1"
    headers: HTTPMessage
    keep_alive: bool

    @property
    def requestline(self) -> str:
        return f"{self.method} {self.target} {self.version}"


def _fault(status: int, message: str) -> EngineError:
    return EngineError(message, status)


def _line(rfile: Readable, limit: int, status: int, too_long: str) -> bytes:
    """One line ending in LF, at most `limit` bytes with it; b"" at a clean end of stream."""
    line = rfile.readline(max(limit, 0) + 1)
    if len(line) > limit:
        raise _fault(status, too_long)
    if line and not line.endswith(b"\n"):
        raise ConnectionResetError("the client stopped mid-line")
    return line


def read_fields(rfile: Readable, limits: Limits, budget: int, what: str) -> tuple[HTTPMessage, int]:
    """Header (or trailer) fields up to the blank line, within `budget` bytes; and what is left."""
    fields = HTTPMessage()
    count = 0
    while True:
        line = _line(rfile, budget, 431, f"{what} exceed {limits.max_head_bytes} bytes")
        if not line:
            raise ConnectionResetError(f"{what} cut short")
        budget -= len(line)
        if line in (b"\r\n", b"\n"):
            return fields, budget
        count += 1
        if count > limits.max_header_fields:
            raise _fault(431, f"too many {what} (limit {limits.max_header_fields})")
        text = line.rstrip(b"\r\n")
        if text[:1] in (b" ", b"\t"):
            raise _fault(400, f"folded {what} line (obsolete line folding is not accepted)")
        name, colon, value = text.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise _fault(400, f"malformed {what} line: {text[:40]!r}")
        value = value.strip(b" \t")
        if BAD_VALUE.search(value):
            raise _fault(400, f"control character in {what} {name.decode()!r}")
        fields[name.decode("ascii")] = value.decode("latin-1")


def read_head(rfile: Readable, limits: Limits) -> Head | None:
    """The next request's head, or None when the client closed the connection between requests."""
    line = b""
    for _ in range(4):  # RFC 9112 2.2: tolerate empty lines before a request line
        line = _line(rfile, limits.max_request_line, 414,
                     f"request line exceeds {limits.max_request_line} bytes")
        if line not in (b"\r\n", b"\n"):
            break
    if not line:
        return None
    match = REQUEST_LINE.fullmatch(line.rstrip(b"\r\n"))
    if not match:
        raise _fault(400, f"malformed request line: {line[:60]!r}")
    method, target, major, minor = match.groups()
    if major != b"1":
        raise _fault(505 if major > b"1" else 400, f"HTTP/{major.decode()}.{minor.decode()} is not supported")
    version = f"HTTP/1.{minor.decode()}"
    headers, _ = read_fields(rfile, limits, limits.max_head_bytes - len(line), "header fields")
    tokens = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
    keep_alive = "close" not in tokens and (minor >= b"1" or "keep-alive" in tokens)
    return Head(method.decode("ascii"), target.decode("latin-1"), version, headers, keep_alive)


def body_length(headers: HTTPMessage, limits: Limits) -> int | None:
    """The body's length from the head, or None for chunked; refused when ambiguous or absurd."""
    encodings = headers.get_all("Transfer-Encoding") or []
    lengths = headers.get_all("Content-Length") or []
    if encodings:
        if lengths:
            raise _fault(400, "both Transfer-Encoding and Content-Length: the body's length is ambiguous")
        codings = [c.strip().lower() for value in encodings for c in value.split(",")]
        if codings != ["chunked"]:
            raise _fault(501, f"unsupported Transfer-Encoding {', '.join(encodings)!r} (only chunked)")
        return None
    values = {v.strip() for value in lengths for v in value.split(",")}
    if not values:
        return 0
    if len(values) > 1:
        raise _fault(400, f"conflicting Content-Length values: {', '.join(sorted(values))}")
    (value,) = values
    if not DIGITS.fullmatch(value):
        raise _fault(400, f"invalid Content-Length {value[:30]!r}: not a byte count")
    size = int(value)
    if size > limits.max_upload:
        raise _fault(413, f"request body of {size} bytes exceeds the limit of {limits.max_upload} bytes")
    return size


def read_exactly(rfile: Readable, size: int, piece: int = 1 << 20) -> Iterator[bytes]:
    """`size` bytes of a body, in pieces; a client that stops early is gone."""
    remaining = size
    while remaining:
        data = rfile.read(min(remaining, piece))
        if not data:
            raise ConnectionResetError("request body cut short")
        remaining -= len(data)
        yield data


def read_chunked(rfile: Readable, limits: Limits, limit: int) -> Iterator[bytes]:
    """The data of a chunked body, at most `limit` bytes; trailers are read and dropped."""
    data = framing = 0
    while True:
        line = _line(rfile, MAX_CHUNK_LINE, 400, f"chunk size line exceeds {MAX_CHUNK_LINE} bytes")
        if not line:
            raise ConnectionResetError("chunked body cut short")
        if not line.endswith(b"\r\n"):
            raise _fault(400, "chunk size line does not end with CRLF")
        size_text, _, extension = line[:-2].partition(b";")
        size_text = size_text.rstrip(b" \t")
        if not HEX.fullmatch(size_text) or BAD_VALUE.search(extension):
            raise _fault(400, f"invalid chunk size line {line[:40]!r}")
        size = int(size_text, 16)
        framing += len(line) + 2
        if framing > FRAMING_ALLOWANCE + FRAMING_RATIO * data:
            raise _fault(400, "chunked body is mostly framing (too many tiny chunks or long extensions)")
        if size == 0:
            read_fields(rfile, limits, limits.max_head_bytes, "trailer fields")
            return
        if data + size > limit:
            raise _fault(413, f"request body exceeds the limit of {limit} bytes")
        yield from read_exactly(rfile, size)
        if rfile.read(2) != b"\r\n":
            raise _fault(400, "chunk data is not followed by CRLF")
        data += size
