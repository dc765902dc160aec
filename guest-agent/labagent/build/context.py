"""A build context, read only through its directory fd: sources resolve inside it, and only regular
files, directories and symlinks are read, within bounds.

A source path is resolved as Docker resolves it: symlinks on the way are followed, but inside the
context, as if it were a root filesystem (RESOLVE_IN_ROOT); a lexical `..` out of it is refused.
Inside a copied directory, symlinks are copied as symlinks, never followed.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from collections.abc import Generator
from dataclasses import dataclass

from ..beneath import open_in_root
from ..errors import BadParameter
from .tree import PLAIN, NotRegular, kind, open_regular, reopen_regular, walk

MAX_ENTRIES = 200_000  # files, directories and links one COPY source may hold
MAX_BYTES = 8 << 30  # bytes one COPY source may make the build read (it is read twice: hash, copy)
WILDCARDS = "*?["
ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")  # gzip bzip2 xz zstd


class Budget:
    """Counts what a walk reads and stops it, with a clear error, past the bounds."""

    def __init__(self, what: str) -> None:
        self.what, self.entries, self.bytes = what, 0, 0
        self.max_entries, self.max_bytes = MAX_ENTRIES, MAX_BYTES

    def entry(self, size: int) -> None:
        self.entries += 1
        self.bytes += size
        if self.entries > self.max_entries:
            raise BadParameter(f"{self.what}: more than {self.max_entries} entries")
        if self.bytes > self.max_bytes:
            raise BadParameter(f"{self.what}: more than {self.max_bytes} bytes")


@dataclass(frozen=True)
class Entry:
    """One thing a COPY source holds: its path below the source ("" for the source itself)."""

    path: str
    st: os.stat_result
    link: str  # a symlink's target
    _dirfd: int
    _name: str
    _what: str

    def open(self) -> int:
        """A readable fd for this regular file; it must still be the regular file the walk saw."""
        if self._name:
            fd = open_regular(self._dirfd, self._name, self._what)
        else:
            fd = reopen_regular(self._dirfd, self._what)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.st.st_dev, self.st.st_ino):
            os.close(fd)
            raise NotRegular(f"{self._what} changed while the build read it")
        return fd


class Context:
    """The context directory open as fd, for the length of one build."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def entries(self, rel: str) -> Generator[Entry, None, None]:
        """What the source rel holds, the source first; refuses what a build must not read."""
        what = f"COPY source {rel!r}"
        if any(c in rel for c in WILDCARDS):
            raise BadParameter(f"{what}: wildcards are not supported; name the files")
        if "\0" in rel:
            raise BadParameter(f"{what} holds a NUL character")
        if not rel.startswith("/") and posixpath.normpath(rel).split("/")[0] == "..":
            raise BadParameter(f"{what} is outside the build context")
        try:
            top = open_in_root(self.fd, rel, os.O_PATH)
        except OSError:
            raise BadParameter(f"{what} not found in the build context") from None
        budget = Budget(what)
        try:
            st = os.fstat(top)
            if stat.S_ISREG(st.st_mode):
                budget.entry(st.st_size)
                yield Entry("", st, "", top, "", what)
                return
            if not stat.S_ISDIR(st.st_mode):  # links were followed: a device, FIFO or socket
                raise BadParameter(f"{what} is a {kind(st.st_mode)}; a build copies only files, "
                                   "directories and symlinks")
            budget.entry(0)
            yield Entry("", st, "", top, "", what)
            for node in walk(top):
                mode = node.st.st_mode
                if stat.S_IFMT(mode) not in PLAIN:
                    raise BadParameter(f"{what}: {node.path} is a {kind(mode)}; a build copies only "
                                       "files, directories and symlinks")
                budget.entry(node.st.st_size if stat.S_ISREG(mode) else 0)
                link = os.readlink(node.name, dir_fd=node.dirfd) if stat.S_ISLNK(mode) else ""
                yield Entry(node.path, node.st, link, node.dirfd, node.name, f"{what}: {node.path}")
        finally:
            os.close(top)

    def is_archive(self, rel: str) -> bool:
        """Whether the regular file rel starts as a tar or a compressed stream: ADD would extract it."""
        entries = self.entries(rel)
        try:
            top = next(entries)
            if not stat.S_ISREG(top.st.st_mode):
                return False
            with os.fdopen(top.open(), "rb") as handle:
                head = handle.read(512)
        finally:
            entries.close()
        return head.startswith(ARCHIVE_MAGIC) or head[257:262] == b"ustar"

    def digest(self, sources: list[str]) -> str:
        """What the sources hold (names, modes, bytes, link targets): COPY's part of its cache key."""
        digest = hashlib.sha256()
        for rel in sources:
            for entry in self.entries(rel):
                digest.update(f"{rel}\0{entry.path}\0{entry.st.st_mode}\0{entry.link}\0".encode(
                    "utf-8", "surrogateescape"))
                if stat.S_ISREG(entry.st.st_mode):
                    with os.fdopen(entry.open(), "rb") as handle:
                        while chunk := handle.read(1 << 20):
                            digest.update(chunk)
        return digest.hexdigest()

