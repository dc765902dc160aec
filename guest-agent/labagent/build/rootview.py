"""An image's root filesystem as overlayfs would merge its unpacked layers, read without mounting it.

COPY needs to know what its destination names in the image: `/bin` may be a link to `usr/bin`, a
directory may already exist. Docker copies into the mounted root and resolves the destination with
its symlinks scoped to that root; here the layers are looked up directly, top first, through their
directory fds and with no symlink followed on the host: a link in the image is read and resolved
as a path inside the image, never opened.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from types import TracebackType

from ..beneath import DIR_FLAGS, MAX_SYMLINKS, open_beneath, opened
from ..errors import BadParameter
from ..images.layers import OPAQUE_XATTR


def clean_path(path: str) -> str:
    """An absolute path with no `.`, `..` or empty component; `..` stops at `/`, as in the kernel."""
    if "\0" in path:
        raise BadParameter(f"path {path!r} holds a NUL character")
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def image_path(path: str, workdir: str = "") -> str:
    """A COPY destination or a WORKDIR as a clean absolute path in the image: a relative one is
    taken from workdir (itself cleaned, since a loaded image's WorkingDir may say anything)."""
    if path.startswith("/"):
        return clean_path(path)
    return clean_path(clean_path(workdir) + "/" + path)


_Merged = tuple[os.stat_result | None, int, list[int]]  # what a path is, its layer, the layers merged below


class RootView:
    """The merged tree of layer directories (lowest first, as in an image's diff ids)."""

    def __init__(self, layers: list[Path]) -> None:
        self.fds: list[int] = []
        try:
            for layer in reversed(layers):  # the top layer first, as overlay looks them up
                self.fds.append(os.open(layer, DIR_FLAGS | os.O_NOFOLLOW))
        except BaseException:
            self.close()
            raise
        root = os.fstat(self.fds[0]) if self.fds else None
        self._seen: dict[tuple[str, ...], _Merged] = {(): (root, 0, list(range(len(self.fds))))}

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self) -> RootView:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # one layer ---------------------------------------------------------------------------
    def _lstat(self, layer: int, parts: tuple[str, ...]) -> os.stat_result | None:
        """The entry parts names in one layer, or None; parent links are refused, not followed."""
        try:
            with opened(open_beneath(self.fds[layer], "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)) as fd:
                return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None

    def _opaque(self, layer: int, parts: tuple[str, ...]) -> bool:
        try:
            with opened(open_beneath(self.fds[layer], "/".join(parts), DIR_FLAGS)) as fd:
                return os.getxattr(fd, OPAQUE_XATTR) == b"y"
        except OSError:
            return False

    # the merge -----------------------------------------------------------------------------
    def _child(self, parent: _Merged, parts: tuple[str, ...]) -> _Merged:
        """What parts is, given what its parent is: overlay's lookup, one component deeper."""
        found, holder, visible = parent
        if found is None or not stat.S_ISDIR(found.st_mode):
            return None, -1, []
        found, holder, below = None, -1, []
        for layer in visible:  # top first: the layers in which the parent is a merged directory
            st = self._lstat(layer, parts)
            if st is None:
                continue
            whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            if found is None:
                if whiteout:
                    break
                found, holder = st, layer
            elif whiteout or not stat.S_ISDIR(st.st_mode):
                break  # a lower non-directory is hidden by the directory above it
            if not stat.S_ISDIR(st.st_mode):
                break
            below.append(layer)
            if self._opaque(layer, parts):
                break
        return found, holder, below

    def lookup(self, parts: tuple[str, ...]) -> tuple[os.stat_result | None, int]:
        """What the symlink-free path parts is in the merged tree (None: nothing), and the layer
        that holds it; every prefix is remembered, so a walk down a tree looks each one up once."""
        depth = len(parts)
        while depth and parts[:depth] not in self._seen:
            depth -= 1
        state = self._seen[parts[:depth]]
        for deeper in range(depth + 1, len(parts) + 1):
            state = self._seen[parts[:deeper]] = self._child(state, parts[:deeper])
        return state[0], state[1]

    def _readlink(self, layer: int, parts: tuple[str, ...]) -> str:
        with opened(open_beneath(self.fds[layer], "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)) as fd:
            return os.readlink(parts[-1], dir_fd=fd)

    def resolve(self, path: str, follow_last: bool = True) -> tuple[str, os.stat_result | None]:
        """path with the image's symlinks resolved inside the image, and what is there (None: nothing).

        A missing component ends the lookups (what follows is to be created); a non-directory on
        the way is refused, as the kernel would refuse it.
        """
        pending = [p for p in reversed(path.split("/")) if p]
        done: list[str] = []
        links = 0
        st = self.lookup(())[0]
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                st = self.lookup(tuple(done))[0]
                continue
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise BadParameter(f"{'/' + '/'.join(done)} is not a directory in the image")
            parts = (*done, part)
            st, holder = self.lookup(parts)
            if st is not None and stat.S_ISLNK(st.st_mode) and (pending or follow_last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise BadParameter(f"{path}: {os.strerror(errno.ELOOP)} in the image")
                target = self._readlink(holder, parts)
                if target.startswith("/"):
                    done = []
                pending.extend(p for p in reversed(target.split("/")) if p)
                st = self.lookup(tuple(done))[0]
                continue
            done.append(part)
        return "/" + "/".join(done), st
