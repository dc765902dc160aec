"""COPY: write the sources into a fresh staging tree, each at its path in the image.

The destination is a path in the image's root filesystem, cleaned as Docker cleans it (`/../etc` is
`/etc`, a relative one is taken from WORKDIR). Directories on the way are resolved in the image, so
COPY into `/bin/` lands in `/usr/bin/` when `/bin` is a link to `usr/bin` (the layer must not hide
that link with a directory), and parents the layer repeats keep the image's mode and owner (a
COPY into /tmp must not take away its sticky bit). Every write goes through the staging tree's fd,
in-root, so nothing a source or a link holds can lead a write out of it.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ..beneath import DIR_FLAGS, makedirs_in_root, open_in_root, opened
from ..errors import BadParameter
from .context import Context, Entry
from .rootview import RootView, clean_path, image_path

CHUNK = 1 << 20
AS_ROOT = os.geteuid() == 0  # COPY makes files owned by 0:0, as Docker does without --chown


@contextmanager
def _destination(target: str) -> Iterator[None]:
    """Errors about the destination name it, whatever call raised them."""
    try:
        yield
    except BadParameter as exc:
        raise BadParameter(f"COPY to {target}: {exc.message}") from None
    except OSError as exc:
        raise BadParameter(f"COPY to {target}: {exc.strerror or exc}") from None


class Stage:
    """The staging tree at fd, filled at resolved image paths, with each directory's metadata."""

    def __init__(self, fd: int, view: RootView) -> None:
        self.fd, self.view = fd, view
        self.dirs: dict[str, tuple[int, int, int, int] | None] = {}  # path -> mode, uid, gid, mtime_ns
        self._resolved: dict[str, str] = {}

    def resolve_dir(self, path: str) -> str:
        """The image directory path names (links followed in the image); a file there is refused."""
        if path not in self._resolved:
            real, st = self.view.resolve(path)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise BadParameter(f"{real} is not a directory in the image")
            self._resolved[path] = real
        return self._resolved[path]

    def makedirs(self, real: str) -> int:
        """The staging directory for the resolved path real; new parents take the image's metadata."""
        parts = [p for p in real.split("/") if p]
        for depth in range(1, len(parts) + 1):
            prefix = "/" + "/".join(parts[:depth])
            if prefix not in self.dirs:
                st = self.view.lookup(tuple(parts[:depth]))[0]
                keep = st is not None and stat.S_ISDIR(st.st_mode)
                self.dirs[prefix] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) if st and keep else None
        return makedirs_in_root(self.fd, real)

    def put(self, path: str, entry: Entry) -> None:
        """entry at the image path path: a directory merges, anything else replaces what is there."""
        mode = entry.st.st_mode
        if stat.S_ISDIR(mode):
            real = self.resolve_dir(path)
            os.close(self.makedirs(real))
            self.dirs[real] = (mode, 0, 0, entry.st.st_mtime_ns)
            return
        parent, name = posixpath.split(path)
        if not name:
            raise BadParameter("a file cannot replace the root directory")
        with opened(self.makedirs(self.resolve_dir(parent))) as dirfd:
            self._clear(dirfd, name)
            if stat.S_ISLNK(mode):
                os.symlink(entry.link, name, dir_fd=dirfd)
            else:
                self._write(dirfd, name, entry)
            if AS_ROOT:
                os.chown(name, 0, 0, dir_fd=dirfd, follow_symlinks=False)
            os.utime(name, ns=(entry.st.st_mtime_ns, entry.st.st_mtime_ns), dir_fd=dirfd, follow_symlinks=False)

    @staticmethod
    def _clear(dirfd: int, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise BadParameter(f"{name}: a directory of this COPY is there already")
        os.unlink(name, dir_fd=dirfd)

    @staticmethod
    def _write(dirfd: int, name: str, entry: Entry) -> None:
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dirfd)
        with os.fdopen(out, "wb") as dst, os.fdopen(entry.open(), "rb") as src:
            left = entry.st.st_size  # what the walk counted against the bounds, no more
            while left > 0 and (chunk := src.read(min(CHUNK, left))):
                dst.write(chunk)
                left -= len(chunk)
            os.fchmod(dst.fileno(), stat.S_IMODE(entry.st.st_mode))

    def finish(self) -> None:
        """Directory metadata, deepest first (so children no longer touch a parent's mtime)."""
        for path in sorted(self.dirs, key=lambda p: p.count("/"), reverse=True):
            meta = self.dirs[path]
            if meta is None:
                continue
            mode, uid, gid, mtime = meta
            with opened(open_in_root(self.fd, path, DIR_FLAGS)) as fd:
                os.fchmod(fd, stat.S_IMODE(mode))
                if AS_ROOT:
                    os.fchown(fd, uid, gid)
                os.utime(fd, ns=(mtime, mtime))


def copy_into(context: Context, sources: list[str], dest: str, workdir: str, view: RootView, stagefd: int) -> None:
    """COPY sources... dest, into the staging tree stagefd, against the image seen through view."""
    target = image_path(dest, workdir)
    stage = Stage(stagefd, view)
    with _destination(target):
        real, st = view.resolve(target)
    into_dir = (len(sources) > 1 or dest.endswith(("/", "/.", "/..")) or dest in (".", "..")
                or target == image_path(workdir or "/")  # WORKDIR names a directory, made yet or not
                or (st is not None and stat.S_ISDIR(st.st_mode)))
    for rel in sources:
        entries = context.entries(rel)
        top = next(entries)
        with _destination(target):
            if not stat.S_ISDIR(top.st.st_mode):  # a file: into the directory, or as the destination
                stage.put(f"{real}/{posixpath.basename(clean_path(rel))}" if into_dir else target, top)
                continue
            # a directory: its contents, not itself, as Docker copies it (an existing one keeps its mode)
            os.close(stage.makedirs(stage.resolve_dir(real)))
        for entry in entries:
            with _destination(target):
                stage.put(f"{real}/{entry.path}", entry)
    with _destination(target):
        stage.finish()
