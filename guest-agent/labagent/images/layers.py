"""Unpack one image layer tar into a directory overlayfs can use as a lower layer.

OCI whiteouts become overlay whiteouts: `.wh.NAME` -> a 0:0 character device NAME, and
`.wh..wh..opq` -> the `trusted.overlay.opaque=y` xattr on its directory.

A layer comes from a stranger, so every write goes through a directory fd (beneath.py): each
member's parent is opened beneath the layer root with no symlink followed, the member is made
with *at calls, and its owner, mode, times and xattrs are set through an fd on what was made.
Directory metadata is replayed at the end (after the children, so mtimes stick) only on a
directory that is still the one the unpack made: a later member may have replaced it, or a
parent, with a symlink. Every size is bounded (Limits).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..beneath import DIR_FLAGS, clean_relpath, is_beneath_error, makedirs_beneath, open_beneath, open_tree, opened
from ..errors import BadParameter, EngineError
from ..fsutil import remove_at

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META = ".wh..wh."  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): skipped, as moby does
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# Docker writes only file capabilities into layers (moby's ReadSecurityXattrToTarHeader); the
# opaque xattr comes from the whiteout marker, never from a tar. user.*, trusted.overlay.redirect,
# security.selinux and the rest would let a layer relabel or redirect the node's view of files.
KEPT_XATTRS = ("security.capability",)
XATTR_PAX = "SCHILY.xattr."
GiB = 1 << 30
NAME_MAX = 255  # bytes in one path component (the kernel's limit)
ID_MAX = (1 << 32) - 2  # (uid_t)-1 means "leave unchanged" to chown
clean_name = clean_relpath  # the old name, for callers that still import it


@dataclass(frozen=True)
class Limits:
    """Bounds on what one archive may make; each refused with a BadParameter naming the member.

    bytes=None: 64 GiB or the free space of the target filesystem less 5% of its size, whichever
    is less. A layer larger than the disk fails anyway; failing before the disk is full keeps the
    node's logs, containers and the engine's own state writable while a gzip bomb is refused.
    """

    members: int = 1_000_000  # a large real layer (node_modules, a distro) holds ~100k
    bytes: int | None = None
    name: int = 4096  # bytes in a member name or a hard link's target (PATH_MAX)
    link: int = 4095  # bytes in a symlink's target (PATH_MAX less the NUL)
    header: int = 1 << 20  # bytes in one pax or GNU long-name header; tarfile reads them whole


DEFAULT_LIMITS = Limits()
MAX_LAYER_BYTES = 64 * GiB


def byte_budget(where: int | Path, limits: Limits) -> int:
    """The most file data one unpack into the filesystem at where (a path or an fd) may write."""
    if limits.bytes is not None:
        return limits.bytes
    fs = os.statvfs(where)
    free = fs.f_bavail * fs.f_frsize - fs.f_blocks * fs.f_frsize // 20
    return max(0, min(MAX_LAYER_BYTES, free))


class Whiteouts:
    """How whiteouts reach the disk; a seam so tests can record instead of mknod.

    dirfd is the member's parent, opened beneath the layer; path is only the logical place.
    """

    def whiteout(self, dirfd: int, name: str, path: Path) -> None:
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dirfd)

    def opaque(self, dirfd: int, path: Path) -> None:
        os.setxattr(dirfd, OPAQUE_XATTR, b"y")


class Readable(Protocol):
    """What a layer is unpacked from: tarfile's stream mode ("r|") only ever calls read()."""

    def read(self, n: int = -1, /) -> bytes: ...


class HashingReader:
    """Wraps a stream and hashes what passes, to check a layer's diff id while unpacking.

    limit bounds the whole uncompressed stream, drain() included: zeros after the end of the
    archive are hashed too, and a gzip bomb of them would keep the engine busy for hours.
    """

    def __init__(self, raw: Readable, limit: int | None = None) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0
        self.limit = limit

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise BadParameter(f"the layer stream is larger than {self.limit} bytes")
        return data

    def drain(self) -> str:
        try:
            while self.read(1 << 20):
                pass
        except (OSError, EOFError, zlib.error) as exc:
            raise BadParameter(f"the layer is not a valid archive: {exc}") from None
        return "sha256:" + self.digest.hexdigest()


def stream_limit(limits: Limits, where: int | Path) -> int:
    """A bound on a layer's uncompressed stream: its file data plus headers and padding."""
    return byte_budget(where, limits) + limits.members * 3 * tarfile.BLOCKSIZE + limits.header * 4


def bounded_tarinfo(limits: Limits) -> type[tarfile.TarInfo]:
    """A TarInfo class that refuses oversized headers and sparse members before tarfile reads them.

    tarfile reads a pax or GNU long-name header whole into memory, whatever size it claims, and
    follows a sparse map of any length; tarfile documents _proc_member as the hook for this.
    """

    class BoundedInfo(tarfile.TarInfo):
        def _proc_member(self, tarfile_: Any) -> Any:
            if self.type == tarfile.GNUTYPE_SPARSE:
                raise BadParameter(f"archive member {self.name!r} is a sparse file: not supported")
            if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                             tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and not 0 <= self.size <= limits.header:
                raise BadParameter(f"an archive header of {self.size} bytes is larger than the "
                                   f"{limits.header} a header may hold")
            # ignore: typeshed leaves out this private hook; tarfile defines and documents it
            return super()._proc_member(tarfile_)  # type: ignore[misc]

        def _proc_gnusparse_10(self, next_: Any, pax_headers: Any, tarfile_: Any) -> None:
            raise BadParameter(f"archive member {next_.name!r} is a sparse file: not supported")

    return BoundedInfo


def next_member(tar: tarfile.TarFile, refusal: str) -> tarfile.TarInfo | None:
    """The archive's next member, or None at its end; a corrupt archive is the client's error."""
    try:
        return tar.next()
    except (tarfile.TarError, OSError, EOFError, zlib.error, RecursionError) as exc:
        raise BadParameter(f"{refusal}: {exc}") from None


def open_layer(path: Path) -> io.BufferedIOBase:
    """A layer blob as an uncompressed tar stream (plain tar or gzip; zstd is refused)."""
    handle = open(path, "rb")  # noqa: SIM115 (the caller closes the stream)
    magic = handle.read(4)
    handle.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")
    if magic == b"\x28\xb5\x2f\xfd":
        handle.close()
        raise BadParameter("zstd-compressed layers are not supported: use gzip or plain tar")
    return handle


@dataclass(frozen=True)
class _Meta:
    uid: int
    gid: int
    mode: int
    mtime_ns: int


class _Unpack:
    """One unpack: the layer root as an fd, the budget spent so far, the directories made."""

    def __init__(self, root: int, dest: Path, whiteouts: Whiteouts | None, devices: bool,
                 limits: Limits) -> None:
        self.holds = "a build context"  # named when a device node or FIFO is refused
        self.what = "the layer"  # what the archive is called in the errors about it as a whole
        self.keep_kinds = False  # docker cp's noOverwriteDirNonDir: no dir replaced by a non-dir, or back
        self.root = root
        self.dest = dest
        self.whiteouts = whiteouts  # None: `.wh.` names are plain files (a build context)
        self.devices = devices
        self.limits = limits
        self.as_root = os.geteuid() == 0
        self.budget = byte_budget(root, limits)
        self.written = 0
        self.dirs: dict[str, tuple[_Meta, tuple[int, int]]] = {}

    # checks ------------------------------------------------------------------------------
    def _name(self, member: tarfile.TarInfo) -> str:
        name = member.name
        if "\0" in name or "\0" in member.linkname:
            raise BadParameter(f"layer member {name!r} has a NUL byte in its name or link")
        if len(os.fsencode(name)) > self.limits.name:
            raise BadParameter(f"layer member {name[:64]!r}... has a name longer than {self.limits.name} bytes")
        rel = clean_relpath(name)
        if any(len(os.fsencode(p)) > NAME_MAX for p in rel.split("/")):
            raise BadParameter(f"layer member {name[:64]!r}... has a path component longer than {NAME_MAX} bytes")
        if not (0 <= member.uid <= ID_MAX and 0 <= member.gid <= ID_MAX):
            raise BadParameter(f"layer member {name!r} has an invalid owner {member.uid}:{member.gid}")
        if member.size < 0:
            raise BadParameter(f"layer member {name!r} has a negative size")
        if member.sparse is not None:
            raise BadParameter(f"layer member {name!r} is a sparse file: not supported")
        return rel

    @staticmethod
    def _meta(member: tarfile.TarInfo) -> _Meta:
        try:  # a pax mtime is any float: nan, inf, or past what utimensat takes
            ns = max(-(1 << 62), min(1 << 62, int(member.mtime * 1_000_000_000)))
        except (ValueError, OverflowError):
            ns = 0
        return _Meta(member.uid, member.gid, member.mode & 0o7777, ns)

    def _parent(self, rel: str) -> int:
        """The parent directory of rel as an fd: opened in one lookup, made only when missing."""
        parent = rel.rpartition("/")[0]
        try:
            return open_beneath(self.root, parent, DIR_FLAGS)
        except FileNotFoundError:
            return makedirs_beneath(self.root, parent)

    # members -----------------------------------------------------------------------------
    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = self._name(member)
        if not rel:
            return  # the root itself: the store owns its metadata
        base = rel.rpartition("/")[2]
        with opened(self._parent(rel)) as parent:
            if self.whiteouts is not None and base.startswith(WHITEOUT_PREFIX):
                self._whiteout(parent, rel, base, member)
            elif member.isdir():
                self._dir(parent, rel, base, member)
            else:
                self._nondir(tar, parent, base, member)

    def _whiteout(self, parent: int, rel: str, base: str, member: tarfile.TarInfo) -> None:
        assert self.whiteouts is not None
        if base == OPAQUE_MARKER:
            self.whiteouts.opaque(parent, self.dest / rel.rpartition("/")[0])
            return
        if base.startswith(WHITEOUT_META):
            return
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", "..") or "/" in target:
            raise BadParameter(f"layer member {member.name!r} is a whiteout of {target!r}, which names no file")
        remove_at(parent, target)
        self.whiteouts.whiteout(parent, target, self.dest / rel.rpartition("/")[0] / target)

    def _dir(self, parent: int, rel: str, base: str, member: tarfile.TarInfo) -> None:
        try:
            existing = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            if existing is not None:
                if self.keep_kinds:
                    raise BadParameter(f"cannot overwrite non-directory {rel!r} with directory {member.name!r}")
                remove_at(parent, base)
            os.mkdir(base, 0o700, dir_fd=parent)  # its own mode comes in the replay
        with opened(open_beneath(parent, base, DIR_FLAGS)) as fd:
            st = os.fstat(fd)
        self.dirs.pop(rel, None)  # a repeated entry: its last metadata wins, replayed in its new place
        self.dirs[rel] = (self._meta(member), (st.st_dev, st.st_ino))

    def _nondir(self, tar: tarfile.TarFile, parent: int, base: str, member: tarfile.TarInfo) -> None:
        if self.keep_kinds:
            try:
                existing = os.stat(base, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise BadParameter(f"cannot overwrite directory {base!r} with non-directory {member.name!r}")
        remove_at(parent, base)
        meta = self._meta(member)
        if member.isreg():
            self._file(tar, parent, base, member, meta)
        elif member.issym():
            self._symlink(parent, base, member, meta)
        elif member.islnk():
            self._hardlink(parent, base, member)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._special(parent, base, member, meta)
        else:
            raise BadParameter(f"layer member {member.name!r} has an unsupported type {member.type!r}")

    def _file(self, tar: tarfile.TarFile, parent: int, base: str, member: tarfile.TarInfo, meta: _Meta) -> None:
        if self.written + member.size > self.budget:
            raise BadParameter(f"layer member {member.name!r}: {self.what} unpacks to more than "
                               f"{self.budget} bytes (64 GiB, or the node's free disk less 5%)")
        self.written += member.size
        fd = open_beneath(parent, base, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with opened(fd):
            source = tar.extractfile(member)
            if source is not None:
                try:
                    while chunk := source.read(1 << 20):
                        _write_all(fd, chunk)
                except (tarfile.TarError, EOFError, zlib.error) as exc:
                    raise BadParameter(f"layer member {member.name!r} is cut short: {exc}") from None
            if self.as_root:
                os.fchown(fd, meta.uid, meta.gid)
                for key, value in member.pax_headers.items():
                    name = key[len(XATTR_PAX):] if key.startswith(XATTR_PAX) else ""
                    if name in KEPT_XATTRS:
                        os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
            os.fchmod(fd, meta.mode)
            os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))

    def _symlink(self, parent: int, base: str, member: tarfile.TarInfo, meta: _Meta) -> None:
        target = member.linkname
        if not target or len(os.fsencode(target)) > self.limits.link:
            raise BadParameter(f"layer member {member.name!r} is a symlink to an empty target or one "
                               f"longer than {self.limits.link} bytes")
        os.symlink(target, base, dir_fd=parent)
        if self.as_root:
            os.chown(base, meta.uid, meta.gid, dir_fd=parent, follow_symlinks=False)
        os.utime(base, ns=(meta.mtime_ns, meta.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        """The source is a name of this layer, found beneath its root with no symlink followed."""
        if len(os.fsencode(member.linkname)) > self.limits.name:
            raise BadParameter(f"layer member {member.name!r} is a hard link to a name longer than "
                               f"{self.limits.name} bytes")
        source = clean_relpath(member.linkname)
        if not source:
            raise BadParameter(f"layer member {member.name!r} is a hard link to the layer's root")
        src_dir, _, src_base = source.rpartition("/")
        try:
            with opened(open_beneath(self.root, src_dir, DIR_FLAGS)) as src_parent:
                os.link(src_base, base, src_dir_fd=src_parent, dst_dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise BadParameter(f"layer member {member.name!r} is a hard link to {member.linkname!r}, "
                               "which the layer does not hold") from None
        except OSError as exc:
            if is_beneath_error(exc):
                raise BadParameter(f"layer member {member.name!r} is a hard link to {member.linkname!r}, "
                                   "which goes through a symlink or a non-directory") from None
            if exc.errno in (errno.EPERM, errno.EISDIR):
                raise BadParameter(f"layer member {member.name!r} is a hard link to {member.linkname!r}, "
                                   "which is not a file of the layer") from None
            raise

    def _special(self, parent: int, base: str, member: tarfile.TarInfo, meta: _Meta) -> None:
        if not self.devices:
            kind = "a FIFO" if member.isfifo() else "a device node"
            raise BadParameter(f"{member.name!r} is {kind}: {self.holds} holds files, directories "
                               "and symlinks only")
        if member.isfifo():
            os.mkfifo(base, 0o600, dir_fd=parent)
        elif not self.as_root:
            return  # only root may make device nodes; a rootless unpack leaves them out
        else:
            if not (0 <= member.devmajor < 1 << 12 and 0 <= member.devminor < 1 << 20):
                raise BadParameter(f"layer member {member.name!r} has an invalid device number")
            kind_bits = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(base, kind_bits | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        # the node was just made in a directory fd only this unpack holds: the name is still it
        if self.as_root:
            os.chown(base, meta.uid, meta.gid, dir_fd=parent, follow_symlinks=False)
        os.chmod(base, meta.mode, dir_fd=parent, follow_symlinks=False)
        os.utime(base, ns=(meta.mtime_ns, meta.mtime_ns), dir_fd=parent, follow_symlinks=False)

    # the replay ----------------------------------------------------------------------------
    def replay(self) -> None:
        """Directory owners, modes and times, deepest last-made first, on what the unpack made only."""
        for rel, (meta, made) in reversed(self.dirs.items()):
            try:
                fd = open_beneath(self.root, rel, DIR_FLAGS)
            except OSError:
                continue  # replaced by a symlink or a file, or whited out: not ours any more
            with opened(fd):
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != made:
                    continue
                if self.as_root:
                    os.fchown(fd, meta.uid, meta.gid)
                os.fchmod(fd, meta.mode)
                os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _explain(member: tarfile.TarInfo, exc: OSError) -> EngineError:
    """A filesystem error while making member, as one line naming it."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EngineError(f"no space left on the node while unpacking {member.name!r}")
    if is_beneath_error(exc):
        return BadParameter(f"layer member {member.name!r} goes through a symlink or a non-directory")
    return BadParameter(f"layer member {member.name!r}: {exc.strerror or exc}")


def unpack_layer(stream: Readable, dest: Path, whiteouts: Whiteouts | None = None, *,
                 devices: bool = True, limits: Limits | None = None) -> None:
    """Unpack an uncompressed tar stream into dest, which must exist and be empty.

    devices=False refuses character and block devices and FIFOs, naming the member (a build
    context: COPY would read through them). With devices=True, device nodes are made only when
    the engine runs as root (as Docker), and FIFOs always.
    """
    _unpack(stream, dest, whiteouts or Whiteouts(), devices, limits or DEFAULT_LIMITS)


def unpack_context(stream: Readable, dest: Path, limits: Limits | None = None) -> None:
    """Unpack a build context: like a layer, but `.wh.` names are plain files, and device nodes
    and FIFOs are refused (a tar cannot hold sockets)."""
    _unpack(stream, dest, None, False, limits or DEFAULT_LIMITS)


def unpack_upload(stream: Readable, dirfd: int, label: Path, *, owner: tuple[int, int] | None = None,
                  keep_kinds: bool = False, limits: Limits | None = None) -> None:
    """Unpack a `docker cp` upload beneath the open directory dirfd (resolved by the caller).

    As a build context: `.wh.` names are plain files (Docker's copy applies no whiteouts), and
    device nodes and FIFOs are refused. owner, when given, replaces every member's uid:gid
    (copyUIDGID); keep_kinds refuses replacing a directory by a non-directory and back
    (noOverwriteDirNonDir). label is the logical place, for messages only.
    """
    job = _Unpack(dirfd, label, None, False, limits or DEFAULT_LIMITS)
    job.holds, job.what, job.keep_kinds = "an archive sent to a container", "the archive", keep_kinds
    _run(stream, job, owner)


def _unpack(stream: Readable, dest: Path, whiteouts: Whiteouts | None, devices: bool, limits: Limits) -> None:
    with open_tree(dest) as root:
        _run(stream, _Unpack(root, dest, whiteouts, devices, limits), None)


def _run(stream: Readable, job: _Unpack, owner: tuple[int, int] | None) -> None:
    limits = job.limits
    try:
        # ignore: typeshed asks any fileobj for seek/tell/write, which stream mode never calls
        tar: tarfile.TarFile = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115
            fileobj=stream, mode="r|", tarinfo=bounded_tarinfo(limits))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BadParameter(f"{job.what} is not a valid tar archive: {exc}") from None
    with tar:
        count = 0
        while True:
            member = next_member(tar, f"{job.what} is not a valid tar archive")
            if member is None:
                break
            # stream mode keeps every member it read; none is looked up again
            # (ignore: TarFile.members is undocumented, so typeshed leaves it out)
            tar.members.clear()  # type: ignore[attr-defined]
            count += 1
            if count > limits.members:
                raise BadParameter(f"{job.what} holds more than {limits.members} members")
            if owner is not None:
                member.uid, member.gid = owner
            try:
                job.member(tar, member)
            except OSError as exc:
                raise _explain(member, exc) from None
    job.replay()
