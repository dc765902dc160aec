"""Removing a path that must lie inside a base directory, walking with no-follow directory fds.

`lab destroy` removes paths a ledger names. A ledger is a file anyone with the user's
rights can edit, and a lab's directory can hold symbolic links: each path is checked to
be lexically below the base, and is reached one component at a time with O_NOFOLLOW, so
neither a `..` nor a symlinked parent can lead the removal outside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OutsideError(ValueError):
    """The path is not below the base directory."""


def parts_below(base: Path, path: Path) -> tuple[str, ...]:
    """PATH's components below BASE; refused unless PATH is absolute, normal and inside."""
    text = str(path)
    if not path.is_absolute() or os.path.normpath(text) != text:
        raise OutsideError(f"{text} is not a plain absolute path")
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        raise OutsideError(f"{text} is not inside {base}") from None
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise OutsideError(f"{text} is not inside {base}")
    return parts


def remove_beneath(base: Path, path: Path) -> bool:
    """Remove PATH (a file, a symlink or an empty directory) inside BASE.

    Returns False when it did not exist. Raises OutsideError, or OSError when a parent is
    a symlink or the removal fails.
    """
    return _remove(base, path, tree=False)


def remove_tree_beneath(base: Path, path: Path) -> bool:
    """As remove_beneath, and a directory goes with everything in it."""
    return _remove(base, path, tree=True)


def _remove(base: Path, path: Path, tree: bool) -> bool:
    parts = parts_below(base, path)
    fd = os.open(base, DIRECTORY_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, DIRECTORY_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return False
            os.close(fd)
            fd = child
        name = parts[-1]
        try:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(mode):
            os.unlink(name, dir_fd=fd)
        elif tree:
            shutil.rmtree(name, dir_fd=fd)  # fd-based and symlink-safe on Linux
        else:
            os.rmdir(name, dir_fd=fd)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
