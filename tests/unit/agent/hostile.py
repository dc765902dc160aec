"""Hostile archives built by code, and the sentinels that prove nothing outside the target changed."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

SENTINEL_UID = 4242
SENTINEL_MTIME = 1_000_000_000
SECRET = b"root:$6$hash:19000:0:99999:7:::\n"


@dataclass
class Entry:
    """One archive member: kind is file, dir, sym, link, chr, blk, fifo, or a raw type byte."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = 1_500_000_000
    pax: dict[str, str] = field(default_factory=dict)
    dev: tuple[int, int] = (1, 3)


KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE,
         "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}


def tar_of(*entries: Entry) -> bytes:
    """A PAX tar holding exactly these members, in this order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = KINDS.get(e.kind, e.kind.encode())
            info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, e.mtime
            info.linkname = e.link
            info.devmajor, info.devminor = e.dev
            info.pax_headers = dict(e.pax)
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def raw_header(name: str, kind: bytes, size: int) -> bytes:
    """One 512-byte header claiming size bytes of data, for headers tarfile would not write."""
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def plant(base: Path) -> Path:
    """A node's files beside the target: a dir and a shadow-like file, each with a marked owner,
    mode, time and xattr an escape would change."""
    outside = base / "outside"
    (outside / "sub").mkdir(parents=True)
    shadow = outside / "shadow"
    shadow.write_bytes(SECRET)
    (outside / "sub" / "file").write_bytes(b"keep\n")
    for path, mode in ((outside, 0o750), (outside / "sub", 0o700), (shadow, 0o600),
                       (outside / "sub" / "file", 0o640)):
        os.chmod(path, mode)
        if os.geteuid() == 0:
            os.chown(path, SENTINEL_UID, SENTINEL_UID)
        try:
            os.setxattr(path, "user.sentinel", b"untouched")
        except OSError:
            pass
    for path in (shadow, outside / "sub" / "file", outside / "sub", outside):
        os.utime(path, (SENTINEL_MTIME, SENTINEL_MTIME))
    return outside


def snapshot(base: Path, skip: Path | None = None) -> dict[str, tuple[object, ...]]:
    """Owner, mode, size, times, links, content and xattrs of every path under base (base too),
    read without following symlinks; skip's subtree (the target) left out."""
    seen: dict[str, tuple[object, ...]] = {}
    for root, dirs, files in os.walk(base):
        here = Path(root)
        if skip is not None and (here == skip or skip in here.parents):
            dirs[:] = []
            continue
        for name in [".", *dirs, *files]:
            path = here if name == "." else here / name
            if skip is not None and path == skip:
                continue
            st = os.lstat(path)
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            try:
                xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                      for k in os.listxattr(path, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            seen[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink,
                               st.st_mtime_ns, content, xattrs)
    return seen
