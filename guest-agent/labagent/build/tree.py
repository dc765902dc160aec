"""Walk and read a tree through directory fds: no symlink is followed, and only regular files are opened.

A build reads trees that strangers made: a context from a tar, the upper dir a RUN step left. A
FIFO there would block a read forever, a device would be read through (/dev/zero never ends, a disk
is the node's own), and a path re-resolved by name follows whatever symlink sits in it at that moment.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from ..beneath import DIR_FLAGS, open_beneath
from ..errors import BadParameter

MAX_DEPTH = 1024  # one open fd per level while walking; the agent's fd limit is far above this

KINDS = {stat.S_IFREG: "regular file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink",
         stat.S_IFCHR: "character device", stat.S_IFBLK: "block device", stat.S_IFIFO: "FIFO",
         stat.S_IFSOCK: "socket"}
PLAIN = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)  # what a build context may hold


def kind(mode: int) -> str:
    return KINDS.get(stat.S_IFMT(mode), "special file")


class NotRegular(BadParameter):
    """A name that was to be read is not a regular file (any more)."""


@dataclass(frozen=True)
class Node:
    path: str  # below the walk's top, "/"-separated
    name: str
    st: os.stat_result  # lstat: the entry itself, never what a link points at
    dirfd: int  # the directory holding it; open while the walk stands at this node
    fd: int = -1  # a directory's own fd (DIR_FLAGS), open while the walk is inside it


def walk(topfd: int) -> Iterator[Node]:
    """Every entry below topfd, each directory before its children, names sorted (so equal trees
    give equal tars); links are reported, never followed."""
    first = os.open(".", DIR_FLAGS, dir_fd=topfd)
    stack: list[tuple[int, str, Iterator[str]]] = [(first, "", iter(sorted(os.listdir(first))))]
    try:
        while stack:
            dirfd, rel, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            path = f"{rel}/{name}" if rel else name
            if not stat.S_ISDIR(st.st_mode):
                yield Node(path, name, st, dirfd)
                continue
            if len(stack) >= MAX_DEPTH:
                raise BadParameter(f"{path} is deeper than {MAX_DEPTH} directories")
            child = open_beneath(dirfd, name, DIR_FLAGS)
            stack.append((child, path, iter(sorted(os.listdir(child)))))
            yield Node(path, name, st, dirfd, child)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def reopen_regular(pathfd: int, what: str) -> int:
    """A readable fd for the O_PATH fd pathfd, only if it is a regular file: a FIFO or a device is
    never opened, so never blocks and is never read. The reopen goes through the fd, not a name."""
    st = os.fstat(pathfd)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(f"{what} is a {kind(st.st_mode)}")
    return os.open(f"/proc/self/fd/{pathfd}", os.O_RDONLY | os.O_CLOEXEC)


def open_regular(dirfd: int, name: str, what: str) -> int:
    """A readable fd for the regular file name in dirfd; a symlink there is not followed."""
    pathfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        return reopen_regular(pathfd, what)
    finally:
        os.close(pathfd)
