"""Open paths beneath a directory file descriptor, so no name or symlink can lead out of the tree.

Image layers, build contexts and container root filesystems come from strangers. Re-resolving a
joined path string (`root / name`) follows whatever symlinks the tree holds at that moment, so every
write an unpack or a build makes goes through a directory fd and one of two resolutions:

- beneath: `..` is refused and no symlink is followed at all (an image layer being unpacked);
- in root: the tree is a root filesystem, and absolute symlinks and `..` resolve inside it, as in
  a chroot (a build's COPY destination, a container's /etc/passwd).

Both use openat2(2) (Linux 5.6) with RESOLVE_BENEATH or RESOLVE_IN_ROOT; on an older kernel they
fall back to a walk of O_NOFOLLOW opens, one component at a time.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import BadParameter

SYS_OPENAT2 = 437  # the same number on every architecture (a syscall added after the table merge)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
MAX_SYMLINKS = 40  # the kernel's own limit on links followed in one lookup
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)
_openat2_works: bool | None = None  # unknown until the first call


def clean_relpath(name: str) -> str:
    """A member name relative to a tree's root; refuse anything that climbs out with `..`."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadParameter(f"path {name!r} escapes its tree")
    return "/".join(parts)


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int | None:
    """openat2(2), or None when the kernel does not have it."""
    global _openat2_works
    if _openat2_works is False:
        return None
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    for _ in range(8):  # EAGAIN: a concurrent rename raced the lookup; the kernel asks to retry
        fd = _libc.syscall(SYS_OPENAT2, dirfd, os.fsencode(path), how, len(how))
        if fd >= 0:
            _openat2_works = True
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.ENOSYS and _openat2_works is None:
            _openat2_works = False
            return None
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def _walk(dirfd: int, parts: list[str], flags: int, mode: int) -> int:
    """Open parts one by one from dirfd, never following a symlink (the fallback)."""
    current = os.dup(dirfd)
    try:
        for part in parts[:-1]:
            following = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=current)
            os.close(current)
            current = following
        last = parts[-1] if parts else "."
        return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
    finally:
        os.close(current)


def open_beneath(dirfd: int, rel: str, flags: int, mode: int = 0o600) -> int:
    """Open rel under dirfd following no symlink on the way, the last component included."""
    clean = clean_relpath(rel) or "."
    fd = _openat2(dirfd, clean, flags | os.O_NOFOLLOW, mode,
                  RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    if fd is not None:
        return fd
    return _walk(dirfd, [] if clean == "." else clean.split("/"), flags, mode)


def _resolve_in_root(rootfd: int, path: str) -> list[str]:
    """The symlink-free components that path names in the tree at rootfd, read as a chroot would."""
    pending = [p for p in reversed(path.split("/")) if p]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        try:
            parent = _walk(rootfd, [*resolved, "."], DIR_FLAGS, 0) if resolved else os.dup(rootfd)
        except (FileNotFoundError, NotADirectoryError):  # a missing tail: nothing more to follow
            resolved.append(part)
            continue
        try:
            target = os.readlink(part, dir_fd=parent)
        except OSError:  # not a symlink, or missing: a plain component
            resolved.append(part)
            continue
        finally:
            os.close(parent)
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            resolved = []
        pending.extend(p for p in reversed(target.split("/")) if p)
    return resolved


def resolve_in_root(rootfd: int, path: str) -> str:
    """The absolute path that path names inside the root filesystem at rootfd, every symlink
    followed as the container would (a missing tail is kept as given): a symlink's real target."""
    return "/" + "/".join(_resolve_in_root(rootfd, path))


def open_in_root(rootfd: int, path: str, flags: int, mode: int = 0o600) -> int:
    """Open path in the root filesystem at rootfd: symlinks are followed, but never out of it."""
    fd = _openat2(rootfd, path.lstrip("/") or ".", flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    if fd is not None:
        return fd
    parts = _resolve_in_root(rootfd, path)
    return _walk(rootfd, parts, flags, mode)


def _makedirs(dirfd: int, parts: list[str], mode: int, step: Callable[[int, int], int]) -> int:
    """Make parts one by one under dirfd; step(current, depth) opens the directory just made."""
    current = os.dup(dirfd)
    try:
        for depth, part in enumerate(parts, start=1):
            try:
                os.mkdir(part, mode, dir_fd=current)
            except FileExistsError:
                pass
            following = step(current, depth)
            os.close(current)
            current = following
        result, current = current, -1
        return result
    finally:
        if current >= 0:
            os.close(current)


def makedirs_beneath(dirfd: int, rel: str, mode: int = 0o755) -> int:
    """The directory rel under dirfd, created where missing, as an fd; symlinks on the way are refused."""
    parts = [p for p in clean_relpath(rel).split("/") if p]
    return _makedirs(dirfd, parts, mode, lambda current, depth: open_beneath(current, parts[depth - 1], DIR_FLAGS))


def makedirs_in_root(rootfd: int, path: str, mode: int = 0o755) -> int:
    """The directory path of the root filesystem at rootfd, created where missing, as an fd.

    path is cleaned first, as Docker cleans a destination (`/../etc` is `/etc`); existing symlinks
    are followed inside the root (`/bin` -> `usr/bin` works), never out of it.
    """
    parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
    return _makedirs(rootfd, parts, mode,
                     lambda current, depth: open_in_root(rootfd, "/".join(parts[:depth]), DIR_FLAGS))


def is_beneath_error(exc: OSError) -> bool:
    """True when a lookup failed because the tree tried to lead out (a symlink or a climb)."""
    return exc.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR)


@contextmanager
def opened(fd: int) -> Iterator[int]:
    """Close fd when the block ends, however it ends."""
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_tree(path: str | os.PathLike[str]) -> Iterator[int]:
    """A tree's root directory as an fd, for the calls above; the root itself must not be a symlink."""
    with opened(os.open(path, DIR_FLAGS | os.O_NOFOLLOW)) as fd:
        yield fd
