"""Container filesystem endpoints: archive HEAD/GET/PUT (docker cp both ways), export, changes.

A tar going out is streamed as it is written (chunked), with the connection's write timeout
back on (a stream normally has none), so a client that stops reading cannot hold the container's
operation lock for longer than one io_timeout.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..containers import archive, changes
from ..errors import BadParameter
from ..interface import EngineInterface
from .http import Request, Response, StreamWriter, json_response
from .router import Route


class _BodyReader:
    """The request body as read(n), for the tar unpacker."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""

    def read(self, n: int = -1) -> bytes:
        if not self.pending:
            self.pending = next(self.chunks, b"")
        if n < 0 or n >= len(self.pending):
            data, self.pending = self.pending, b""
        else:
            data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def drain(self) -> None:
        """Read what follows the end of the archive, so the connection stays usable."""
        self.pending = b""
        for _ in self.chunks:
            pass


class _TarOut:
    """The reply body: sent in pieces of 64 KiB or more, but the last 64 KiB (which hold the tar's
    end) only with the chunked terminator, in one write, once the operation is over. A client
    that stops reading at the tar's end (the docker CLI does) then never finds the engine still
    writing to it, and its next request finds the rootfs unmounted."""

    HOLD = 1 << 16

    def __init__(self, writer: StreamWriter) -> None:
        self.writer = writer
        self.held = bytearray()

    def write(self, data: bytes) -> int:
        self.held += data
        if len(self.held) >= 2 * self.HOLD:
            self.writer.write(bytes(self.held[:-self.HOLD]))
            del self.held[:-self.HOLD]
        return len(data)

    def finish(self) -> None:
        tail = bytes(self.held)
        if self.writer.chunked:
            self.writer.wfile.write((b"%x\r\n%s\r\n" % (len(tail), tail) if tail else b"") + b"0\r\n\r\n")
            self.writer.wfile.flush()
        else:
            self.writer.write(tail)


def _tar_stream(req: Request, headers: dict[str, str] | None = None) -> _TarOut:
    """As Request.stream, with the stat header, and the write timeout kept (see the docstring)."""
    h = req.handler
    chunked = h.request_version == "HTTP/1.1"
    h.reader.settle(req.limits.io_timeout)
    h.send_response(200)
    h.standard_headers("application/x-tar")
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    if chunked:
        h.send_header("Transfer-Encoding", "chunked")
    else:
        h.close_connection = True
    h.end_headers()
    h.wfile.flush()
    req.streamed = True
    return _TarOut(StreamWriter(h.wfile, chunked))


def _event(engine: EngineInterface, action: str, ref: str) -> None:
    c = engine.containers.get(ref)
    engine.events.emit("container", action, c.id, name=c.name, image=c.spec.image)


def archive_get(engine: EngineInterface, req: Request, ref: str) -> Response | None:
    """HEAD: the stat header only; GET: the header and the tar of the path."""
    container = engine.containers.get(ref)
    path = req.arg("path")
    with archive.container_root(engine.lifecycle, container) as rootfd, \
            archive.locate(rootfd, path, ref) as found:
        header = {archive.STAT_HEADER: archive.stat_path(rootfd, found).header()}
        if req.method == "HEAD":
            return Response(200, b"", "application/x-tar", header)
        writer = _tar_stream(req, header)
        arcname = "." if found.name == "/" else found.name
        archive.write_tar(writer, found.dirfd, found.base, arcname)
    writer.finish()  # once the rootfs is unmounted
    _event(engine, "archive-path", container.id)
    return None


def archive_put(engine: EngineInterface, req: Request, ref: str) -> Response:
    container = engine.containers.get(ref)
    path = req.arg("path")
    keep_kinds = req.flag("noOverwriteDirNonDir")
    copy_ids = req.flag("copyUIDGID")
    if container.spec.readonly_rootfs:
        raise BadParameter("container rootfs is marked read-only")
    body = _BodyReader(req.body_chunks())
    with archive.container_root(engine.lifecycle, container) as rootfd:
        owner = None
        if copy_ids:
            owner = archive.copy_owner(rootfd, container, engine.images.resolve(container.spec.image_id).config)
        archive.extract(rootfd, path, body, ref, owner=owner, keep_kinds=keep_kinds)
    body.drain()
    _event(engine, "extract-to-dir", container.id)
    return Response(200, b"", "text/plain")


def export(engine: EngineInterface, req: Request, ref: str) -> None:
    container = engine.containers.get(ref)
    with archive.container_root(engine.lifecycle, container) as rootfd:
        writer = _tar_stream(req)
        archive.export_tar(writer, rootfd)
    writer.finish()
    _event(engine, "export", container.id)


def container_changes(engine: EngineInterface, req: Request, ref: str) -> Response:
    container = engine.containers.get(ref)
    bundle = engine.containers.bundle(container.id)
    image = engine.images.resolve(container.spec.image_id)
    hidden = changes.mount_points(bundle) | {m.target.rstrip("/") for m in container.spec.mounts}
    found = changes.changes(bundle / "upper", engine.images.layer_dirs(image), hidden)
    return json_response(found or None)


ROUTES: list[Route] = [
    ("GET", "/containers/{ref}/archive", archive_get),
    ("PUT", "/containers/{ref}/archive", archive_put),
    ("GET", "/containers/{ref}/export", export),
    ("GET", "/containers/{ref}/changes", container_changes),
]
