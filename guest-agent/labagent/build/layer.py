"""Turn a directory into a layer tar: a RUN container's upper dir, or COPY's files.

Overlay whiteouts (0:0 char devices, the opaque xattr) become OCI `.wh.` entries again.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

from ..layers import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def tar_dir(src: Path, out: Path, prefix: str = "", whiteouts: set[Path] | None = None) -> str:
    """Write src's tree (sorted, so equal trees give equal tars) to out; return its sha256 digest.

    whiteouts: paths the caller knows are whiteouts (tests record them instead of mknod).
    """
    known = whiteouts or set()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(src):
            dirs.sort()
            base = Path(root)
            rel_root = base.relative_to(src)
            if rel_root != Path(".") or prefix:
                arc_root = (Path(prefix) / rel_root).as_posix().strip("/")
                if arc_root and rel_root != Path("."):
                    tar.add(base, arcname=arc_root, recursive=False)
                if _opaque(base) and rel_root != Path("."):
                    info = tarfile.TarInfo(f"{arc_root}/{OPAQUE_MARKER}")
                    tar.addfile(info)
            for name in sorted(files + [d for d in dirs if (base / d).is_symlink()]):
                path = base / name
                arc = (Path(prefix) / rel_root / name).as_posix().strip("/")
                st = os.lstat(path)
                if path in known or (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
                    parent = Path(arc).parent.as_posix()
                    wh = WHITEOUT_PREFIX + name
                    tar.addfile(tarfile.TarInfo(wh if parent == "." else f"{parent}/{wh}"))
                    continue
                tar.add(path, arcname=arc, recursive=False)
    digest = hashlib.sha256()
    with open(out, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
