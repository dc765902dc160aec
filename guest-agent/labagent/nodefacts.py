"""What `GET /info` says about the node, read from /proc, /etc/os-release, uname and the
engine's cgroup: one function whose paths a test points at files of its own.

Every figure is read, never assumed: a file that is missing or unreadable gives the value a
node without that feature has (no swap accounting, forwarding off), not a guess.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

MAX_FILE = 1 << 20  # /proc/self/mountinfo of a node with many containers is the largest read
MAX_FDS = 1 << 20  # descriptors counted for NFd, at most
# Docker's names for the backing filesystems it recognises (its fsmagic table), by fstype.
VERSION_TIMEOUT = 5.0  # seconds for `crun --version`, asked once per binary
BACKING_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "overlay": "overlayfs"}


@dataclass(frozen=True)
class CgroupSupport:
    """The controllers the kernel offers the engine's cgroup, and whether swap is accounted."""

    memory: bool = False
    cpu: bool = False
    pids: bool = False
    swap: bool = False


@dataclass(frozen=True)
class NodeFacts:
    hostname: str
    kernel: str
    machine: str
    os_name: str  # PRETTY_NAME
    os_version: str  # VERSION_ID
    ncpu: int
    mem_total: int  # bytes
    ipv4_forwarding: bool
    bridge_nf_iptables: bool
    bridge_nf_ip6tables: bool
    backing_fs: str  # Docker's name for the filesystem the engine root is on ("extfs", "xfs" ...)
    open_fds: int
    cgroups: CgroupSupport


def read_small(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE).decode("utf-8", "replace")
    except OSError:
        return None


def mem_total(meminfo: str | None) -> int:
    """MemTotal of /proc/meminfo, in bytes (the file says kB, meaning KiB)."""
    for line in (meminfo or "").splitlines():
        name, _, rest = line.partition(":")
        words = rest.split()
        if name == "MemTotal" and words and words[0].isdigit():
            return int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    return 0


def cpu_list_count(text: str) -> int:
    """The CPUs of a list like "0-3,6" (Cpus_allowed_list); 0 if it does not parse."""
    count = 0
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return 0
        lo, hi = int(first), int(last or first)
        if hi < lo:
            return 0
        count += hi - lo + 1
    return count


def ncpu(status: str | None) -> int:
    """The CPUs this process may run on (as Go's runtime.NumCPU, which dockerd reports):
    Cpus_allowed_list of /proc/self/status, else the CPUs online."""
    for line in (status or "").splitlines():
        name, _, value = line.partition(":")
        if name == "Cpus_allowed_list" and (count := cpu_list_count(value)):
            return count
    return os.cpu_count() or 1


def os_release(text: str | None) -> tuple[str, str]:
    """(PRETTY_NAME, VERSION_ID) of an os-release file; ("Linux", "") without one."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in ("PRETTY_NAME", "VERSION_ID"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[name.strip()] = value
    return values.get("PRETTY_NAME") or "Linux", values.get("VERSION_ID", "")


def unescape(field: str) -> str:
    """A mountinfo path: the kernel writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def backing_filesystem(mountinfo: str | None, path: Path) -> str:
    """The filesystem type of the mount holding path (the deepest mount point above it)."""
    best, fstype = -1, ""
    target = str(path)
    for line in (mountinfo or "").splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        point = unescape(fields[4])
        rest = fields[fields.index("-", 6) + 1:]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if rest and inside and len(point) >= best:
            best, fstype = len(point), rest[0]
    return BACKING_NAMES.get(fstype, fstype) or "unknown"


def flag(path: Path) -> bool:
    return (read_small(path) or "").strip() == "1"


def cgroup_support(group: Path) -> CgroupSupport:
    """What the engine's own cgroup offers: its cgroup.controllers names the controllers its
    parent enabled for it, and memory.swap.max exists only where the kernel accounts swap."""
    controllers = set((read_small(group / "cgroup.controllers") or "").split())
    return CgroupSupport(memory="memory" in controllers, cpu="cpu" in controllers,
                         pids="pids" in controllers,
                         swap="memory" in controllers and (group / "memory.swap.max").exists())


def open_fds(proc: Path) -> int:
    try:
        with os.scandir(proc / "self" / "fd") as entries:
            count = 0
            for _ in entries:
                count += 1
                if count >= MAX_FDS:
                    break
            return count
    except OSError:
        return 0


def read_facts(root: Path, cgroup_group: Path, proc: Path = Path("/proc"),
               release: Path = Path("/etc/os-release"),
               uname: os.uname_result | None = None) -> NodeFacts:
    """The node as it is now. root: the engine's root dir; cgroup_group: the engine's cgroup."""
    name = uname or os.uname()
    pretty, version = os_release(read_small(release))
    return NodeFacts(
        hostname=name.nodename, kernel=name.release, machine=name.machine,
        os_name=pretty, os_version=version,
        ncpu=ncpu(read_small(proc / "self" / "status")),
        mem_total=mem_total(read_small(proc / "meminfo")),
        ipv4_forwarding=flag(proc / "sys" / "net" / "ipv4" / "ip_forward"),
        bridge_nf_iptables=flag(proc / "sys" / "net" / "bridge" / "bridge-nf-call-iptables"),
        bridge_nf_ip6tables=flag(proc / "sys" / "net" / "bridge" / "bridge-nf-call-ip6tables"),
        backing_fs=backing_filesystem(read_small(proc / "self" / "mountinfo"), root),
        open_fds=open_fds(proc),
        cgroups=cgroup_support(cgroup_group),
    )


_commits: dict[str, str] = {}
_commits_lock = threading.Lock()


def runtime_commit(crun: str) -> str:
    """The commit line of `crun --version` (what dockerd shows as RuncCommit.ID); "" if it says
    none. Asked once per binary path: the answer cannot change while the engine runs."""
    with _commits_lock:
        if crun in _commits:
            return _commits[crun]
    try:
        out = subprocess.run([crun, "--version"], capture_output=True, timeout=VERSION_TIMEOUT,
                             check=False).stdout[:4096].decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        out = ""
    commit = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                   if line.startswith("commit:")), "")
    with _commits_lock:
        _commits[crun] = commit[:64]
    return commit[:64]
