"""Container filesystem endpoints: archive HEAD/GET/PUT (docker cp both ways), export, changes.

A tar going out is streamed as it is written (chunked), with the connection's write timeout
back on (a stream normally has none), so a client that stops reading cannot hold the container's
operation lock for longer than one io_timeout.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

from ..containers import archive, changes
from ..containers.model import Container
from ..errors import BadParameter, EngineError
from ..interface import EngineInterface
from .http import Request, Response, StreamWriter, json_response
from .router import Route

REFUSAL_DRAIN = 1 << 20  # bytes of a refused upload read (and dropped) to answer on a live connection


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

    def seek(self, offset: int, /) -> int:
        """A request body only goes forward (GzipFile asks for seek, and calls it only to rewind)."""
        raise OSError("a request body cannot seek")

    def peek(self, n: int) -> bytes:
        while len(self.pending) < n:
            more = next(self.chunks, b"")
            if not more:
                break
            self.pending += more
        return self.pending[:n]

    def drain(self, limit: int | None = None) -> None:
        """Read what follows the end of the archive, so the connection stays usable; with a
        limit, give up past it (the connection then closes after the reply)."""
        self.pending, seen = b"", 0
        for chunk in self.chunks:
            seen += len(chunk)
            if limit is not None and seen > limit:
                return


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


def mounts(engine: EngineInterface, container: Container) -> list[archive.MountSource]:
    """The container's binds and volumes, as node directories (volumes through the engine's
    volume store); tmpfs mounts live only in a running container's mount namespace, so a path
    in one is the rootfs' own. The files crun binds from the bundle (/etc/hostname, hosts,
    resolv.conf) are read and written there, as the container sees them."""
    store = engine.volumes
    found = []
    for m in container.spec.mounts:
        if m.type == "bind" and m.source:
            found.append(archive.MountSource(m.target, Path(m.source), m.readonly))
        elif m.type == "volume":
            found.append(archive.MountSource(m.target, Path(store.data_dir(m.source)), m.readonly))
    bundle = engine.containers.bundle(container.id)
    taken = {m.target for m in container.spec.mounts}
    found += [archive.MountSource(f"/etc/{name}", bundle, False, name)
              for name in ("hostname", "hosts", "resolv.conf") if f"/etc/{name}" not in taken]
    return found


def archive_get(engine: EngineInterface, req: Request, ref: str) -> Response | None:
    """HEAD: the stat header only; GET: the header and the tar of the path."""
    container = engine.containers.get(ref)
    path = req.arg("path")
    with archive.container_tree(engine.lifecycle, container, path, mounts(engine, container)) as \
            (rootfd, inner, mount), archive.locate(rootfd, path, ref, inner) as found:
        header = {archive.STAT_HEADER: archive.stat_path(rootfd, found, mount).header()}
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
    body = _BodyReader(req.body_chunks())
    try:
        _extract(engine, container, ref, path, body, keep_kinds, copy_ids)
    except EngineError:
        # a refusal before or while the tar was read: the rest of a small body is read first, so
        # the client, still sending, reads the error rather than meeting a closed connection
        body.drain(REFUSAL_DRAIN)
        raise
    body.drain()
    _event(engine, "extract-to-dir", container.id)
    return Response(200, b"", "text/plain")


def _extract(engine: EngineInterface, container: Container, ref: str, path: str, body: _BodyReader,
             keep_kinds: bool, copy_ids: bool) -> None:
    with archive.container_tree(engine.lifecycle, container, path, mounts(engine, container)) as \
            (rootfd, inner, mount):
        if mount is None and container.spec.readonly_rootfs:
            raise BadParameter("container rootfs is marked read-only")
        if mount is not None and mount.readonly:
            raise BadParameter("mounted volume is marked read-only")
        owner = None
        if copy_ids:
            with archive.container_root(engine.lifecycle, container) if mount else nullcontext(rootfd) as users_root:
                config = engine.images.resolve(container.spec.image_id).config
                owner = archive.copy_owner(users_root, container, config)
        # Docker takes a gzip-compressed tar too; what it unpacks to is bounded as a plain one's is
        if body.peek(2) != b"\x1f\x8b":
            archive.extract(rootfd, path, body, ref, owner=owner, keep_kinds=keep_kinds, inner=inner)
            return
        try:
            archive.extract(rootfd, path, gzip.GzipFile(fileobj=body, mode="rb"), ref, owner=owner,
                            keep_kinds=keep_kinds, inner=inner)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # the gzip layer's own errors
            raise BadParameter(f"the archive is not a valid gzip stream: {exc}") from None


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
