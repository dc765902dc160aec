"""The API server's bounds: what one client may make the engine hold, and for how long.

Every number is a parameter of the Server (tests use small ones); the defaults follow what
common servers do and what real Docker clients send.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class Limits:
    # The request head. 16 KiB for the request line, twice Apache's 8 KiB: `docker build` puts
    # its build args, labels and cache sources in the query string. The whole head (request
    # line, header fields, and the trailers of a chunked body) is held to 64 KiB and 100 fields,
    # so 256 connections hold at most 16 MiB of heads.
    max_request_line: int = 16 * KiB
    max_header_fields: int = 100
    max_head_bytes: int = 64 * KiB
    # Bodies. JSON documents (create, exec, ...) are read into memory; a few MiB is far
    # beyond any real one. Uploads (docker load, a build context) are streamed to disk; real
    # image archives are hundreds of MiB and a large one a few GiB, so 8 GiB refuses only a
    # runaway or hostile stream, well before it fills any node disk this lab makes.
    max_json_body: int = 4 * MiB
    max_upload: int = 8 * GiB
    # Timeouts, in seconds. idle: a kept-alive connection with no new request (docker-py and
    # the docker CLI reconnect when a pooled socket was closed). head: from the first byte of a
    # request to the end of its head, however slowly it trickles in. io: the longest silence
    # while the engine reads a body or writes a reply. Streams (logs -f, attach, events,
    # wait) have none once their headers are sent: there the engine is the side that waits.
    idle_timeout: float = 60.0
    head_timeout: float = 30.0
    io_timeout: float = 60.0
    # Connections served at once (each holds a thread); beyond it, a 503 and a close.
    max_connections: int = 256
