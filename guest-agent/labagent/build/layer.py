"""Turn a directory into a layer tar: a RUN container's upper dir, or COPY's staging tree.

Overlay whiteouts (0:0 char devices, the opaque xattr) become OCI `.wh.` entries again. Any other
name that starts with `.wh.` is refused: the unpacker would read it as a whiteout (`.wh...` once
named the layer store itself), so a layer may only hold the whiteouts overlay really made, as
Docker's and containerd's differs hold them. The walk never follows a link and never opens
anything but a regular file: devices and FIFOs a RUN step made are stored as what they are.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

from ..beneath import open_tree
from ..errors import BadParameter
from ..images.layers import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX
from .tree import Node, open_regular, walk

TYPES = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE, stat.S_IFCHR: tarfile.CHRTYPE,
         stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFREG: tarfile.REGTYPE}


class ReservedName(BadParameter):
    """The tree holds a name that image layers keep for whiteouts."""

    def __init__(self, path: str) -> None:
        self.path, self.name = path, path.rsplit("/", 1)[-1]
        super().__init__(f"a file named {path}, which image layers reserve for whiteouts")


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _info(node: Node) -> tarfile.TarInfo:
    """The entry as lstat saw it; names and owners numeric (the engine's passwd is not the image's)."""
    st = node.st
    info = tarfile.TarInfo(node.path)
    info.type = TYPES[stat.S_IFMT(st.st_mode)]
    info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def tar_dir(src: Path, out: Path) -> str:
    """Write src's tree (sorted, so equal trees give equal tars) to out; return its sha256 digest."""
    links: dict[tuple[int, int], str] = {}  # (dev, ino) of a file with several names -> its first name
    with open_tree(src) as top, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for node in walk(top):
            if node.name.startswith(WHITEOUT_PREFIX):
                raise ReservedName("/" + node.path)
            st, parent = node.st, node.path[: -len(node.name)]
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # an overlay whiteout
                tar.addfile(tarfile.TarInfo(parent + WHITEOUT_PREFIX + node.name))
                continue
            if stat.S_ISSOCK(st.st_mode):
                continue  # tar has no sockets; Docker leaves them out too
            info = _info(node)
            if stat.S_ISDIR(st.st_mode):
                tar.addfile(info)
                if _opaque(node.fd):
                    tar.addfile(tarfile.TarInfo(f"{node.path}/{OPAQUE_MARKER}"))
            elif stat.S_ISLNK(st.st_mode):
                info.linkname = os.readlink(node.name, dir_fd=node.dirfd)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    info.type, info.linkname = tarfile.LNKTYPE, links[key]
                    tar.addfile(info)
                    continue
                links[key] = node.path
                info.size = st.st_size
                with os.fdopen(open_regular(node.dirfd, node.name, node.path), "rb") as handle:
                    tar.addfile(info, handle)
            else:  # a device or FIFO: its header alone, never a read
                tar.addfile(info)
    digest = hashlib.sha256()
    with open(out, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
