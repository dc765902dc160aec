"""A process lab started, recorded so that it can be ended later by its PID and nothing else.

A PID alone names whatever process the kernel gave that number last; the ledger keeps the
start time (clock ticks after boot, from /proc/PID/stat) and the boot id with it, and a
process is signalled only through a pidfd opened *before* that identity was checked, so a
PID reused in between cannot be hit.
"""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path

from pydantic import BaseModel, ConfigDict

PROC = Path("/proc")
BOOT_ID = PROC / "sys" / "kernel" / "random" / "boot_id"


class ProcessId(BaseModel):
    """Who a PID was when lab recorded it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    start_ticks: int
    boot_id: str


def _boot_id() -> str:
    return BOOT_ID.read_text().strip()


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat; the command name before it may hold spaces and ')'."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


def identify(pid: int) -> ProcessId | None:
    """The identity of the live process PID, or None if there is none."""
    if pid <= 0:
        return None
    ticks = _start_ticks(pid)
    return None if ticks is None else ProcessId(pid=pid, start_ticks=ticks, boot_id=_boot_id())


def is_running(process: ProcessId) -> bool:
    """True only if PID is still the very process that was recorded."""
    return process.pid > 0 and identify(process.pid) == process


def _open(process: ProcessId) -> int | None:
    """A pidfd on the recorded process, or None if that process is gone (or PID was reused)."""
    if process.pid <= 0:
        return None
    try:
        fd = os.pidfd_open(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
    if not is_running(process):  # checked after the open: the fd is the recorded process
        os.close(fd)
        return None
    return fd


def terminate(process: ProcessId, timeout: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after TIMEOUT; False if the recorded process was not running."""
    fd = _open(process)
    if fd is None:
        return False
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                return True
            readable, _, _ = select.select([fd], [], [], timeout)  # a pidfd is readable once it exits
            if readable:
                return True
        return True
    finally:
        os.close(fd)
