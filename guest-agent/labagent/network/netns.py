"""Named network namespaces (/run/netns/NAME, as `ip netns` makes them), without a fork.

A network namespace belongs to a thread, not the whole process, so a short-lived thread
unshares one, bind-mounts it at its name and opens a netlink socket in it; the engine's
own threads never leave the node's namespace. pyroute2 forks a child for this instead.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from ..libc import CLONE_NEWNET, LIBC, MNT_DETACH, MS_BIND, MS_REC, MS_SHARED, check, last_error
from .netlink import Rtnl

NETNS_DIR = Path("/run/netns")
_rundir_lock = threading.Lock()
_rundir_shared = False


def _share_rundir(rundir: Path) -> None:
    """Make the run dir a shared mount once, as iproute2 does, so mounts propagate."""
    global _rundir_shared
    with _rundir_lock:
        if _rundir_shared:
            return
        rundir.mkdir(parents=True, exist_ok=True)
        target = str(rundir).encode()
        if LIBC.mount(b"none", target, b"none", MS_SHARED | MS_REC, None) != 0:
            check(LIBC.mount(target, target, b"none", MS_BIND | MS_REC, None), f"bind {rundir}")
            check(LIBC.mount(b"none", target, b"none", MS_SHARED | MS_REC, None), f"share {rundir}")
        _rundir_shared = True


def create(name: str, rundir: Path = NETNS_DIR) -> Rtnl:
    """A new named netns with lo up; returns a netlink socket that works inside it."""
    _share_rundir(rundir)
    path = rundir / name
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    made: list[Rtnl] = []
    failed: list[BaseException] = []

    def inside() -> None:
        try:
            check(LIBC.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            own = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            check(LIBC.mount(own, str(path).encode(), b"none", MS_BIND, None), f"bind {path}")
            rtnl = Rtnl()
            try:
                rtnl.set_up(1)  # lo is always index 1 in a fresh namespace
            except BaseException:
                rtnl.close()
                raise
            made.append(rtnl)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=inside, name=f"netns-{name}")
    thread.start()
    thread.join()
    if failed:
        remove(name, rundir)
        raise failed[0]
    return made[0]


def remove(name: str, rundir: Path = NETNS_DIR) -> bool:
    """Unmount and unlink a named netns; False if there was none."""
    path = rundir / name
    if LIBC.umount2(str(path).encode(), MNT_DETACH) != 0:
        err = last_error()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def open_fd(name: str, rundir: Path = NETNS_DIR) -> int:
    return os.open(rundir / name, os.O_RDONLY | os.O_CLOEXEC)


def rename(old: str, new: str, rundir: Path = NETNS_DIR) -> None:
    """Bind the namespace at the new name, then drop the old one (a mount cannot be renamed)."""
    source, target = rundir / old, rundir / new
    os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    if LIBC.mount(str(source).encode(), str(target).encode(), b"none", MS_BIND, None) != 0:
        err = last_error()
        target.unlink()
        raise OSError(err, f"bind {source} at {target}: {os.strerror(err)}")
    remove(old, rundir)
