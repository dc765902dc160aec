"""Unpack one image layer tar into a directory overlayfs can use as a lower layer.

OCI whiteouts become overlay whiteouts: `.wh.NAME` -> a 0:0 character device NAME, and
`.wh..wh..opq` -> the `trusted.overlay.opaque=y` xattr on its directory. Members are
created without following symlinks, so a hostile tar cannot write outside the layer.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO

from .errors import BadParameter

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class Whiteouts:
    """How whiteouts reach the disk; a seam so tests can record instead of mknod."""

    def whiteout(self, path: Path) -> None:
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def opaque(self, path: Path) -> None:
        os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)


class HashingReader:
    """Wraps a stream and hashes what passes, to check a layer's diff id while unpacking."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self.digest.hexdigest()


def clean_name(name: str) -> str:
    """A member name relative to the layer root; refuse anything that climbs out."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadParameter(f"layer member {name!r} escapes the layer")
    return "/".join(parts)


def _parent_dir(root: Path, rel: str) -> Path:
    """Make the parent directories of rel, refusing symlinks on the way."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise BadParameter(f"layer path {rel!r} goes through a non-directory")
    return current


def _clear(path: Path, keep_dir: bool) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        if source is not None:
            while chunk := source.read(1 << 20):
                out.write(chunk)


def _apply_meta(member: tarfile.TarInfo, target: Path, as_root: bool) -> None:
    if as_root:
        os.chown(target, member.uid, member.gid, follow_symlinks=False)
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr.") and as_root:
            try:
                os.setxattr(target, key[13:], value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError:
                pass
    if not member.issym():
        os.chmod(target, member.mode & 0o7777)
        os.utime(target, (member.mtime, member.mtime))


def open_layer(path: Path) -> IO[bytes]:
    """A layer blob as an uncompressed tar stream (plain tar or gzip; zstd is refused)."""
    handle = open(path, "rb")  # noqa: SIM115 (the caller closes the stream)
    magic = handle.read(4)
    handle.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        handle.close()
        raise BadParameter("zstd-compressed layers are not supported: use gzip or plain tar")
    return handle


def unpack_layer(stream: IO[bytes], dest: Path, whiteouts: Whiteouts | None = None) -> None:
    """Unpack an uncompressed tar stream into dest, which must exist and be empty."""
    whiteouts = whiteouts or Whiteouts()
    as_root = os.geteuid() == 0
    dirs: list[tuple[tarfile.TarInfo, Path]] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            rel = clean_name(member.name)
            if not rel:
                continue
            parent = _parent_dir(dest, rel)
            base = rel.rsplit("/", 1)[-1]
            if base == OPAQUE_MARKER:
                whiteouts.opaque(parent)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                target = parent / base[len(WHITEOUT_PREFIX):]
                _clear(target, keep_dir=False)
                whiteouts.whiteout(target)
                continue
            target = parent / base
            _clear(target, keep_dir=member.isdir())
            if member.isdir():
                if not target.exists():
                    os.mkdir(target, 0o755)
                dirs.append((member, target))
                continue
            if member.isreg():
                _write_file(tar, member, target)
            elif member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                source = dest / clean_name(member.linkname)
                if os.path.islink(source) or not source.exists():
                    raise BadParameter(f"hard link {rel!r} points at missing {member.linkname!r}")
                os.link(source, target, follow_symlinks=False)
                continue
            elif member.ischr() or member.isblk():
                if not as_root:
                    continue
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            elif member.isfifo():
                os.mkfifo(target, 0o600)
            else:
                continue
            _apply_meta(member, target, as_root)
    for member, target in reversed(dirs):  # after children, so mtimes stick
        _apply_meta(member, target, as_root)
