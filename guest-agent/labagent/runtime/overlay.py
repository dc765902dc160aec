"""Mount and unmount a container's overlay rootfs with mount(2), no subprocess."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import EngineError
from ..libc import LIBC, MNT_DETACH, last_error


class Mounter:
    """Real overlay mounts; tests use a fake that only makes the merged directory."""

    def mount(self, lowers: list[Path], upper: Path, work: Path, merged: Path) -> None:
        """lowers are bottom-first, as the image lists them; overlay wants top-first.

        merged must exist (create makes it): no mkdir on the start path.
        """
        lowerdir = ":".join(str(p) for p in reversed(lowers))
        options = f"lowerdir={lowerdir},upperdir={upper},workdir={work}"
        if len(options) >= 4096:
            raise EngineError("too many image layers for one overlay mount")
        if LIBC.mount(b"overlay", str(merged).encode(), b"overlay", 0, options.encode()) != 0:
            err = last_error()
            raise EngineError(f"overlay mount on {merged} failed: {os.strerror(err)}")

    def unmount(self, merged: Path) -> None:
        if LIBC.umount2(str(merged).encode(), MNT_DETACH) != 0:
            err = last_error()
            if err not in (errno.EINVAL, errno.ENOENT):
                raise EngineError(f"unmount of {merged} failed: {os.strerror(err)}")

    def is_mounted(self, merged: Path) -> bool:
        return os.path.ismount(merged)
