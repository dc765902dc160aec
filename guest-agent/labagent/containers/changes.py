"""`docker diff`: what a container changed, read from its overlay upper dir against the image layers.

An upper entry is Added (1) when no lower layer has the path, else Modified (0); an overlay
whiteout (a 0:0 character device) is Deleted (2). Directories that exist below are reported only
when something under them changed, as a copy-up alone changes nothing. The mount points crun
makes for the engine's own mounts (/proc, /dev, /etc/hosts, ...) are not the container's changes:
Docker keeps them in an init layer below the container's, so they are left out here too.

The upper dir is the container's own writing, so it is walked through directory fds with no
symlink followed, and lower layers are looked up beneath their roots the same way.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..beneath import DIR_FLAGS, open_beneath, open_tree, opened
from ..fsutil import read_json

MODIFIED, ADDED, DELETED = 0, 1, 2
MAX_DEPTH = 256


def mount_points(bundle: Path) -> set[str]:
    """The destinations of the mounts in the bundle's config.json (the engine wrote it)."""
    try:
        config = read_json(bundle / "config.json")
    except (OSError, ValueError):
        return set()
    return {str(m.get("destination", "")).rstrip("/") for m in config.get("mounts", []) if m.get("destination")}


class _Lowers:
    """Whether a path exists in the image's lower layers (top layer first, whiteouts honoured)."""

    def __init__(self, layers: Iterable[Path]) -> None:
        self.layers = [p for p in reversed(list(layers)) if p.is_dir()]

    def has(self, rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        for layer in self.layers:
            try:
                with open_tree(layer) as root, opened(open_beneath(root, parent, DIR_FLAGS)) as fd:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
        return False


def changes(upper: Path, layers: Iterable[Path], hidden: set[str]) -> list[dict[str, Any]]:
    """[{"Path", "Kind"}] sorted by path, as Docker's GET /containers/{id}/changes answers."""
    lowers = _Lowers(layers)
    found: list[dict[str, Any]] = []
    ancestors = {p.rsplit("/", i)[0] for p in hidden for i in range(1, p.count("/"))}

    def walk(fd: int, prefix: str, depth: int) -> bool:
        """Record the changes under fd; True if any was recorded."""
        any_found = False
        for name in sorted(os.listdir(fd)):
            path = f"{prefix}/{name}"
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                found.append({"Path": path, "Kind": DELETED})
                any_found = True
                continue
            if path in hidden:
                continue
            mark = len(found)
            below = False
            if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                with opened(open_beneath(fd, name, DIR_FLAGS)) as child:
                    below = walk(child, path, depth + 1)
            existed = lowers.has(path.lstrip("/"))
            if stat.S_ISDIR(st.st_mode) and (existed or path in ancestors) and not below:
                continue
            found.insert(mark, {"Path": path, "Kind": MODIFIED if existed else ADDED})
            any_found = True
        return any_found

    with open_tree(upper) as root:
        walk(root, "", 0)
    return sorted(found, key=lambda c: str(c["Path"]))
