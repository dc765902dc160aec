"""docker cp's side of the engine: stat, tar out and tar in a container's files, and export.

The path and every member of an uploaded tar come from strangers, and the tree itself is the
container's (its processes made its symlinks). So nothing here joins path strings: the query path
is resolved in the rootfs as the container sees it (beneath.open_in_root: `..` and absolute
symlinks stay inside), the walk that writes a tar goes from directory fd to directory fd following
no symlink, and an upload is unpacked by the layer unpacker beneath the target directory's fd.

A stopped or created container's rootfs is not mounted: it is mounted through the lifecycle's
Mounter for the operation and unmounted after, under the container's operation lock, so a start
cannot mount the same upper dir meanwhile (Docker holds the container's lock the same way).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..beneath import DIR_FLAGS, open_beneath, open_in_root, open_tree, opened, resolve_in_root
from ..errors import BadParameter, EngineError, NotFound
from ..fsutil import rfc3339
from ..images.layers import Limits, Readable, unpack_upload
from . import ocispec, users
from .lifecycle import Lifecycle
from .model import Container

STAT_HEADER = "X-Docker-Container-Path-Stat"
MAX_DEPTH = 256  # directory levels one archive walks; each holds an fd while its children are written
# Go's os.FileMode type bits, which Docker puts in the stat header (the permission bits are Unix's)
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def go_mode(st_mode: int) -> int:
    """st_mode as Go's os.FileMode, which the docker CLI decodes (a dir is 1<<31, not S_IFDIR)."""
    mode = st_mode & 0o777
    for bit, go in ((stat.S_ISUID, GO_SETUID), (stat.S_ISGID, GO_SETGID), (stat.S_ISVTX, GO_STICKY)):
        if st_mode & bit:
            mode |= go
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
             stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE, stat.S_IFSOCK: GO_SOCKET}.get(kind, 0)
    return mode


@dataclass(frozen=True)
class PathStat:
    """Docker's ContainerPathStat."""

    name: str
    size: int
    mode: int
    mtime: str
    link_target: str

    def header(self) -> str:
        doc = {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
               "linkTarget": self.link_target}
        return base64.b64encode(json.dumps(doc).encode()).decode()


@dataclass(frozen=True)
class Located:
    """A query path found in the rootfs: its parent as an fd, and its last component there."""

    dirfd: int
    base: str  # "." when the path itself is the directory (a trailing `/` or `/.`)
    name: str  # what Docker names it: the last component of the path as given
    path: str  # the cleaned absolute path in the container


def clean_query(path: str) -> str:
    """Docker's cleaning of a container path: absolute, `..` folded, a trailing `/` or `/.` kept."""
    if not path:
        raise BadParameter("path cannot be empty")
    if "\0" in path:
        raise BadParameter("path must not hold a NUL byte")
    clean = _absolute(path)  # normpath alone keeps a leading `//`
    if path.endswith("/.") and clean != "/":
        return clean + "/."
    if path.endswith("/") and clean != "/":
        return clean + "/"
    return clean


def _absolute(path: str) -> str:
    return "/" + posixpath.normpath("/" + path).lstrip("/")


@dataclass(frozen=True)
class MountSource:
    """A node directory mounted in the container (a bind or a volume): paths under its target are
    read and written there, as Docker mounts a container's volumes for an archive call."""

    target: str
    source: Path
    readonly: bool = False
    file: str = ""  # a single file mounted at target: this name in the source directory



def in_mount(path: str, mounts: list[MountSource]) -> tuple[MountSource, str] | None:
    """The mount the cleaned path falls in (the deepest), and the path inside its source.

    Matched on the cleaned path, not through the rootfs' symlinks: a symlink in the image that
    leads into a mount point reaches the rootfs' directory under it, never outside the rootfs.
    """
    clean = clean_query(path)
    lexical = posixpath.normpath(clean)
    best: MountSource | None = None
    for mount in mounts:
        target = _absolute(mount.target)
        if mount.file and lexical == target:
            return mount, "/" + mount.file
        if mount.file:
            continue
        if (lexical == target or lexical.startswith(target.rstrip("/") + "/")) and \
                (best is None or len(target) > len(_absolute(best.target))):
            best = mount
    if best is None:
        return None
    rest = lexical[len(_absolute(best.target)):] or "/"
    if clean.endswith("/.") and rest != "/":
        rest += "/."
    elif clean.endswith("/") and rest != "/":
        rest += "/"
    return best, rest


@contextmanager
def locate(rootfd: int, path: str, where: str, inner: str | None = None) -> Iterator[Located]:
    """The path's parent opened in the rootfs (symlinks followed inside it), its last component
    not followed, as Docker resolves an archive path; NotFound names it as Docker does.

    inner: where to look under rootfd when it is a mount's source rather than the rootfs (path
    still gives the name)."""
    clean = clean_query(inner or path)
    asked = clean_query(path)
    head, base = posixpath.split(clean)
    missing = NotFound(f"Could not find the file {path} in container {where}")
    try:
        dirfd = open_in_root(rootfd, head or "/", DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise missing from None
        raise
    try:
        try:
            os.stat(base or ".", dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            raise missing from None
        name = posixpath.basename(asked.rstrip("/")) or "/"
        if asked.endswith("/."):
            name = "."
        yield Located(dirfd, base or ".", name, clean)
    finally:
        os.close(dirfd)


def stat_path(rootfd: int, found: Located, mount: MountSource | None = None) -> PathStat:
    """Docker's stat of the path; a symlink's linkTarget is where it leads in the container
    (resolved inside the mount's source when the path is in one, as that is all we reach)."""
    st = os.stat(found.base, dir_fd=found.dirfd, follow_symlinks=False)
    target = ""
    if stat.S_ISLNK(st.st_mode):
        target = resolve_in_root(rootfd, found.path)
        if mount is not None:
            target = _absolute(mount.target + "/" + target)
    return PathStat(found.name, st.st_size, go_mode(st.st_mode), rfc3339(st.st_mtime), target)


# tar out ---------------------------------------------------------------------------------------
class _Exact:
    """Exactly size bytes of a file that a running container may be growing or truncating."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.left = fd, size

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        data = bytearray()
        while len(data) < want:
            piece = os.read(self.fd, want - len(data))
            if not piece:  # shrunk since its size was taken: pad, as the header is already out
                data += bytes(want - len(data))
                break
            data += piece
        self.left -= len(data)
        return bytes(data)


class _Writer:
    """One tar of a subtree, walked through directory fds with no symlink followed."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.links: dict[tuple[int, int], str] = {}

    def entry(self, parent: int, name: str, arcname: str, depth: int = 0) -> None:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return  # gone while we walked: a running container changes its files
        info = tarfile.TarInfo(arcname)
        info.mode, info.uid, info.gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            self._dir(parent, name, info, depth)
        elif stat.S_ISREG(st.st_mode):
            self._file(parent, name, info, st)
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent)
            self.tar.addfile(info)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            info.type = (tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else
                         tarfile.BLKTYPE if stat.S_ISBLK(st.st_mode) else tarfile.FIFOTYPE)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(info)
        # sockets are left out, as Docker leaves them out

    def _dir(self, parent: int, name: str, info: tarfile.TarInfo, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise EngineError(f"{info.name!r} is nested more than {MAX_DEPTH} directories deep")
        try:
            fd = open_beneath(parent, name, DIR_FLAGS)
        except OSError:
            return  # replaced by something else since the stat
        with opened(fd):
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
            prefix = info.name.rstrip("/")
            for child in sorted(os.listdir(fd)):
                self.entry(fd, child, f"{prefix}/{child}", depth + 1)

    def _file(self, parent: int, name: str, info: tarfile.TarInfo, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
            self.tar.addfile(info)
            return
        try:  # O_NONBLOCK: if a FIFO took the file's place since the stat, the open must not hang
            fd = open_beneath(parent, name, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        with opened(fd):
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode):
                return
            info.type, info.size = tarfile.REGTYPE, now.st_size
            self.tar.addfile(info, _Exact(fd, now.st_size))
        if st.st_nlink > 1:
            self.links[key] = info.name


def write_tar(sink: Sink, parent: int, name: str, arcname: str) -> None:
    """The tree at name (in the directory parent) as a tar, its top member called arcname."""
    # ignore: typeshed asks a stream-mode fileobj for more than write(); stream mode writes 10 KiB pieces
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        _Writer(tar).entry(parent, name, arcname)


def export_tar(sink: Sink, rootfd: int) -> None:
    """The whole rootfs, members named relative to it (`bin/sh`), as `docker export` writes."""
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        writer = _Writer(tar)
        for child in sorted(os.listdir(rootfd)):
            writer.entry(rootfd, child, child, 1)


# tar in ----------------------------------------------------------------------------------------
def extract(rootfd: int, path: str, stream: Readable, where: str, *, owner: tuple[int, int] | None,
            keep_kinds: bool, limits: Limits | None = None, inner: str | None = None) -> None:
    """Unpack stream into the directory path of the rootfs (every symlink of path followed inside
    it); inner, as for locate(), when rootfd is a mount's source."""
    clean = clean_query(inner or path)
    try:
        pathfd = open_in_root(rootfd, clean, os.O_PATH)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise NotFound(f"Could not find the file {path} in container {where}") from None
        raise
    with opened(pathfd):
        if not stat.S_ISDIR(os.fstat(pathfd).st_mode):
            raise BadParameter("extraction point is not a directory")
        with opened(open_beneath(pathfd, ".", DIR_FLAGS)) as dirfd:
            unpack_upload(stream, dirfd, Path(clean), owner=owner, keep_kinds=keep_kinds, limits=limits)


def copy_owner(rootfd: int, container: Container, image_config: dict[str, object]) -> tuple[int, int] | None:
    """copyUIDGID: the container's user and primary group, from its own passwd and group files;
    None (the archive's owners) when the container runs as the image's default root."""
    spec = ocispec.user_spec(container.spec, image_config)
    if not spec:
        return None
    user = users.resolve_in(users.read_root_file(rootfd, "/etc/passwd"),
                            users.read_root_file(rootfd, "/etc/group"), spec)
    return int(user["uid"]), int(user["gid"])


# the rootfs, mounted for the operation, or the mount a path falls in ---------------------------
@contextmanager
def container_root(lifecycle: Lifecycle, container: Container) -> Iterator[int]:
    """The container's merged rootfs as an fd: the running one's, or mounted for this operation."""
    bundle = lifecycle.store.bundle(container.id)
    merged = bundle / "rootfs"
    with lifecycle.op_lock(container.id):
        if not lifecycle.store.exists(container.id):
            raise NotFound(f"No such container: {container.id}")
        mine = not lifecycle.mounter.is_mounted(merged)
        if mine:
            image = lifecycle.images.resolve(container.spec.image_id)
            lifecycle.mounter.mount(lifecycle.images.layer_dirs(image), bundle / "upper", bundle / "work", merged)
        try:
            with open_tree(merged) as rootfd:
                yield rootfd
        finally:
            if mine:
                lifecycle.mounter.unmount(merged)


@contextmanager
def container_tree(lifecycle: Lifecycle, container: Container, path: str,
                   mounts: list[MountSource]) -> Iterator[tuple[int, str | None, MountSource | None]]:
    """Where path lives: (tree fd, path inside it or None for the rootfs itself, the mount if any)."""
    found = in_mount(path, mounts)
    if found is None:
        with container_root(lifecycle, container) as rootfd:
            yield rootfd, None, None
        return
    mount, rest = found
    try:  # a bind's source is the API caller's node path (root's, as with dockerd), a volume's the engine's
        rootfd = os.open(mount.source, DIR_FLAGS)
    except OSError as exc:
        raise EngineError(f"the mount at {mount.target} is not reachable on the node: {exc.strerror}") from None
    with opened(rootfd):
        yield rootfd, rest, mount
