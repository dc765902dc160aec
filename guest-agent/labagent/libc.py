"""The C library, loaded once, for the few system calls the stdlib lacks.

mount(2), umount2(2), unshare(2), setns(2) and inotify. Loaded by its soname: glibc's is
libc.so.6 on every Debian release, and ctypes.util.find_library runs `ldconfig -p` in a
subprocess on each call, which four modules used to do at every engine start.
"""

from __future__ import annotations

import ctypes
import os

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_BIND, MS_REC, MS_PRIVATE, MS_SLAVE, MS_SHARED = 0x1000, 0x4000, 1 << 18, 1 << 19, 1 << 20
MNT_DETACH = 2


def last_error() -> int:
    return ctypes.get_errno()


def check(result: int, what: str) -> None:
    """Raise OSError (errno and message) for a libc call that returned non-zero."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
