"""Small filesystem and time helpers shared by the stores."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any, durable: bool = True) -> None:
    """Write JSON atomically: a crash leaves the old file or the new one, never half.

    Compact, because only the C encoder is fast and it cannot indent. `durable=False`
    skips the fsync (about 10 ms under TCG) for state that a node crash makes moot
    anyway, such as the pid of a process that cannot outlive the node.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    text = json.dumps(data, sort_keys=True)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def rmtree(path: Path) -> None:
    """Remove a tree if it exists; overlay whiteouts and odd modes included.

    A file that goes while the walk runs (an exec's process file, removed by its own session)
    is no error, and a directory that gains one meanwhile is walked again.
    """
    for attempt in range(3):
        try:
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            elif path.exists():
                shutil.rmtree(path, onerror=_vanished_is_fine)
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or attempt == 2:
                raise


def _vanished_is_fine(function: Any, name: str, exc_info: Any) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def remove_at(dirfd: int, name: str) -> None:
    """Remove name in the directory at dirfd, whatever it is, following no symlink on the way.

    A directory goes with shutil.rmtree's fd-based walk: a symlink inside is unlinked, never
    followed, so a hostile tree cannot make this remove anything outside it.
    """
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)


def rfc3339(ts: float | None = None) -> str:
    """Docker's timestamp format (RFC 3339 with nanoseconds, UTC)."""
    ts = time.time() if ts is None else ts
    whole = datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{int((ts % 1) * 1e9):09d}Z"


ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_rfc3339(text: str) -> float:
    """The inverse of rfc3339(), tolerant of fewer fraction digits."""
    if not text or text.startswith("0001-"):
        return 0.0
    base, _, frac = text.rstrip("Z").partition(".")
    whole = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return whole + (float(f"0.{frac}") if frac else 0.0)


MAX_WALK = 1_000_000  # entries a tree_size walk looks at before giving up (a hostile tree)


def tree_size(root: Path) -> int:
    """Bytes of the regular files under root, a hard-linked file once, symlinks not followed.

    One bounded, iterative walk for every figure Docker reports of a tree on disk (SizeRw,
    SpaceReclaimed, system df, history): counting stops after MAX_WALK entries.
    """
    total, walked, linked, stack = 0, 0, set(), [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    walked += 1
                    if walked > MAX_WALK:
                        return total
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            info = entry.stat(follow_symlinks=False)
                            if info.st_nlink > 1:
                                if (info.st_dev, info.st_ino) in linked:
                                    continue
                                linked.add((info.st_dev, info.st_ino))
                            total += info.st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def new_id() -> str:
    """A 64-hex id like Docker's."""
    return secrets.token_hex(32)
