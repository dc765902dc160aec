"""Disk use of a container's writable layer (prune's SpaceReclaimed, system df's SizeRw)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def tree_size(root: Path) -> int:
    """Bytes of the files under root, each inode once, symlinks not followed, no recursion."""
    total, seen, pending = 0, set(), [str(root)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
            elif (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total
