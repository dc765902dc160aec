"""`GET /containers/{id}/top`: the container's processes (its cgroup's) in the columns of `ps`.

dockerd runs the node's `ps` with the client's ps_args and keeps the rows of the container's
pids. Here the rows are built from /proc for the two layouts clients use, `ps -ef` (the
default) and `ps aux`; any other ps_args is refused by name rather than half-honoured.
"""

from __future__ import annotations

import os
import pwd
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadParameter
from ..runtime.cgroups import read_small

FULL = ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")
USER = ("USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND")
FULL_ARGS = ("-ef", "-fe", "-f", "-e -f", "-f -e")
USER_ARGS = re.compile(r"^-?[axw]*u[axw]*$")
MAX_ARGS = 64
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def layout(ps_args: str) -> tuple[str, ...]:
    """The columns for ps_args: -ef (or none) and the `aux` family; anything else is a 400."""
    args = ps_args.strip()
    if not args or args in FULL_ARGS:
        return FULL
    if len(args) <= MAX_ARGS and USER_ARGS.match(args):
        return USER
    shown = args if len(args) <= MAX_ARGS else args[:MAX_ARGS] + "..."
    raise BadParameter(f"ps_args {shown!r} is not supported by this engine: use -ef (the default) or aux")


@dataclass
class Process:
    """What ps shows of one process, read from /proc/<pid>."""

    pid: int
    ppid: int
    uid: int
    state: str
    tty: int
    cpu_ticks: int  # utime + stime
    start_ticks: int  # since boot
    vsize: int  # bytes
    rss_pages: int
    cmd: str


def parse_stat(text: str) -> tuple[str, list[str]]:
    """/proc/<pid>/stat: the comm (in parentheses, which may hold spaces and ')') and the fields after it."""
    start, end = text.find("("), text.rfind(")")
    if start < 0 or end < start:
        raise ValueError("malformed stat")
    return text[start + 1:end], text[end + 2:].split()


def read_process(proc: Path, pid: int) -> Process | None:
    base = proc / str(pid)
    stat, status, cmdline = (read_small(base / n) for n in ("stat", "status", "cmdline"))
    if stat is None or status is None:
        return None  # gone meanwhile
    try:
        comm, f = parse_stat(stat)
        uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
        args = [a for a in (cmdline or "").split("\0") if a]
        return Process(pid=pid, ppid=int(f[1]), uid=uid, state=f[0], tty=int(f[4]),
                       cpu_ticks=int(f[11]) + int(f[12]), start_ticks=int(f[19]), vsize=int(f[20]),
                       rss_pages=int(f[21]), cmd=" ".join(args) if args else f"[{comm}]")
    except (ValueError, IndexError, StopIteration):
        return None


def user_name(uid: int) -> str:
    """The node's name for uid, as the node's ps would show it (numeric when unknown)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def tty_name(tty_nr: int) -> str:
    if tty_nr == 0:
        return "?"
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{minor + (major - 136) * 256}"
    if major == 4:
        return f"tty{minor}"
    return "?"


def clock(seconds: int, long: bool) -> str:
    """TIME: [DD-]HH:MM:SS for -ef, M:SS for aux."""
    if not long:
        return f"{seconds // 60}:{seconds % 60:02d}"
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def started(epoch: float, now: float) -> str:
    """STIME/START: HH:MM today, else Mon DD."""
    if now - epoch < 86400:
        return time.strftime("%H:%M", time.localtime(epoch))
    return time.strftime("%b%d", time.localtime(epoch))


def uptime(proc: Path) -> float:
    text = read_small(proc / "uptime") or "0"
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return 0.0


def rows(pids: list[int], columns: tuple[str, ...], proc: Path = Path("/proc")) -> list[list[str]]:
    """One row of strings per live pid, in the order of columns."""
    now, up = time.time(), uptime(proc)
    boot = now - up
    mem_total = 0
    for line in (read_small(proc / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_total = int(line.split()[1]) * 1024
    table: list[list[str]] = []
    for pid in pids:
        p = read_process(proc, pid)
        if p is None:
            continue
        cpu_s = p.cpu_ticks // TICKS
        alive = max(up - p.start_ticks / TICKS, 1e-9)
        cpu_pct = 100.0 * p.cpu_ticks / TICKS / alive
        begun = started(boot + p.start_ticks / TICKS, now)
        if columns == FULL:
            table.append([user_name(p.uid), str(p.pid), str(p.ppid), str(int(cpu_pct)), begun,
                          tty_name(p.tty), clock(cpu_s, True), p.cmd])
        else:
            rss = p.rss_pages * PAGE
            mem_pct = 100.0 * rss / mem_total if mem_total else 0.0
            table.append([user_name(p.uid), str(p.pid), f"{cpu_pct:.1f}", f"{mem_pct:.1f}",
                          str(p.vsize // 1024), str(rss // 1024), tty_name(p.tty), p.state, begun,
                          clock(cpu_s, False), p.cmd])
    return table
