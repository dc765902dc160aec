"""Per-container cgroup v2 parents: ROOT_CG/<id>/{shim,ctr}.

crun puts the container in `<id>/ctr` (limits apply there); the shim moves itself into
`<id>/shim`, out of the engine's service cgroup, so restarting the engine kills no container.
memory.events in `<id>` is hierarchical, so it still counts the container's OOM kills after
crun has removed `ctr`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

from ..errors import EngineError
from ..fsutil import rmtree

log = logging.getLogger(__name__)
CONTROLLERS = ("cpu", "memory", "pids")
FREEZE_TIMEOUT = 10.0  # seconds for cgroup.events to say the freeze (or thaw) is done
FREEZE_CHECK = 0.01
MAX_CGROUP_FILE = 1 << 20
MIN_SHARES, MAX_SHARES = 2, 262144  # cgroup v1's cpu.shares range, kept by Docker's CpuShares
MAX_PIDS = 1 << 16  # processes listed by top, at most  # a cgroup or proc file read whole: bounded all the same


class Cgroups:
    def __init__(self, fs_root: Path = Path("/sys/fs/cgroup"), group: str = "labagent") -> None:
        self.fs_root = fs_root
        self.group = group
        self.base = fs_root / group

    def setup(self) -> None:
        """Create the engine's group and enable the controllers down to it."""
        self.favor_dynamic_changes()
        self.base.mkdir(parents=True, exist_ok=True)
        self._enable(self.fs_root)
        self._enable(self.base)

    def favor_dynamic_changes(self) -> None:
        """Remount the cgroup2 hierarchy with `favordynmods` (Linux 6.0+).

        Without it, every move of a process into a cgroup (the shim's, each container's)
        waits for an RCU grace period, which under TCG on one vCPU took 30-80 ms of a
        container start at random. With it, forks and exits pay a little instead.
        """
        options = mount_options(self.fs_root)
        if options is None or "favordynmods" in options:
            return
        result = subprocess.run(["mount", "-o", "remount,favordynmods", str(self.fs_root)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log.info("cgroup2 stays without favordynmods (kernel too old?): %s", result.stderr.strip())

    def _enable(self, path: Path) -> None:
        """All controllers in one write; one by one only if that fails (one is missing)."""
        try:
            with open(path / "cgroup.subtree_control", "w") as handle:
                handle.write(" ".join(f"+{c}" for c in CONTROLLERS))
            return
        except OSError:
            pass
        for controller in CONTROLLERS:
            try:
                with open(path / "cgroup.subtree_control", "w") as handle:
                    handle.write(f"+{controller}")
            except OSError as exc:
                log.debug("cannot enable %s in %s: %s", controller, path, exc)

    def container_path(self, cid: str) -> str:
        """The OCI cgroupsPath (absolute, relative to the cgroup root)."""
        return f"/{self.group}/{cid}/ctr"

    def prepare(self, cid: str) -> Path:
        """Make <id> with controllers enabled and <id>/shim; return the shim's cgroup.procs."""
        parent = self.base / cid
        parent.mkdir(exist_ok=True)
        self._enable(parent)
        (parent / "shim").mkdir(exist_ok=True)
        return parent / "shim" / "cgroup.procs"

    def oom_killed(self, cid: str) -> bool:
        try:
            text = (self.base / cid / "memory.events").read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", "0")) > 0

    def container_dir(self, cid: str) -> Path:
        """The container's own cgroup (crun's `ctr`): its processes, limits and figures."""
        return self.base / cid / "ctr"

    def read(self, cid: str, name: str) -> str | None:
        """One interface file of the container's cgroup (cpu.stat, memory.stat...); None if absent."""
        return read_small(self.container_dir(cid) / name)

    def procs(self, cid: str) -> list[int]:
        """The pids in the container's cgroup and the groups below it (a container may make its
        own, cgroupns being private), sorted: its init, children and execs."""
        pids: set[int] = set()
        groups = [self.container_dir(cid)]
        while groups and len(pids) < MAX_PIDS:
            group = groups.pop()
            text = read_small(group / "cgroup.procs") or ""
            pids.update(int(word) for word in text.split() if word.isdigit())
            try:
                groups += [Path(e.path) for e in os.scandir(group) if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
        return sorted(pids)

    def freeze(self, cid: str, frozen: bool, timeout: float = FREEZE_TIMEOUT) -> None:
        """cgroup v2 freezer: write cgroup.freeze, then wait for cgroup.events to say `frozen N`.

        The write only asks; the kernel reports the end of the transition in cgroup.events,
        and Docker's pause returns only once every task is frozen.
        """
        group, want = self.container_dir(cid), "1" if frozen else "0"
        try:
            with open(group / "cgroup.freeze", "w") as handle:
                handle.write(want)
        except OSError as exc:
            raise EngineError(f"cannot {'freeze' if frozen else 'thaw'} the container's cgroup: {exc}") from None
        deadline = time.monotonic() + timeout
        while keyed(read_small(group / "cgroup.events") or "").get("frozen") != int(want):
            if time.monotonic() > deadline:
                raise EngineError(f"the container's cgroup did not {'freeze' if frozen else 'thaw'} "
                                  f"within {timeout:g} s")
            time.sleep(FREEZE_CHECK)

    def set_limits(self, cid: str, memory: int, cpu: tuple[int, int], pids: int, shares: int = 0) -> None:
        """Apply limits to a running container's cgroup (docker update), as crun would at start.

        memory: bytes (0 = leave as is); cpu: (quota, period) in microseconds ((0, 0) = no quota);
        pids: a count (0 = unlimited); shares: Docker's CpuShares, written as cpu.weight (0 = leave
        as is). No swap, as at create: memory.swap.max stays 0.
        """
        group = self.container_dir(cid)
        writes: list[tuple[str, str]] = []
        if memory:
            writes += [("memory.max", str(memory)), ("memory.swap.max", "0")]
        quota, period = cpu
        writes.append(("cpu.max", f"{quota} {period}" if quota else f"max {period or 100000}"))
        writes.append(("pids.max", str(pids) if pids > 0 else "max"))
        if shares:
            writes.append(("cpu.weight", str(shares_to_weight(shares))))
        mounted = (self.fs_root / "cgroup.controllers").exists()  # not in tests: plain directories
        for name, value in writes:
            if name == "memory.swap.max" and mounted and not (group / name).exists():
                continue  # a kernel without swap accounting has no swap to limit
            try:
                with open(group / name, "w") as handle:
                    handle.write(value)
            except OSError as exc:
                raise EngineError(f"cannot update {name} of the container: {exc}") from None

    def remove(self, cid: str) -> None:
        """rmdir leaf-first; a cgroup with live processes stays (and is logged)."""
        parent = self.base / cid
        if not (self.fs_root / "cgroup.controllers").exists():
            rmtree(parent)  # not a cgroup2 mount (tests): plain directories
            return
        for path in (parent / "shim", parent / "ctr", parent):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove cgroup %s: %s", path, exc)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] to cgroup v2 cpu.weight [1, 10000], linearly, as runc
    and crun (up to 1.22; crun(1), "CGROUP v2") convert them. The engine writes the weight
    itself, at start (config.json's `unified`) and on update, so both give the same one."""
    shares = min(max(shares, MIN_SHARES), MAX_SHARES)
    return 1 + (shares - MIN_SHARES) * 9999 // (MAX_SHARES - MIN_SHARES)


def mount_options(mount_point: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> set[str] | None:
    """The superblock options of the cgroup2 mount at mount_point, or None if it is not one."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[4] != str(mount_point):
            continue
        # after the optional fields, " - ": fstype, source, super options
        rest = fields[fields.index("-") + 1:]
        if len(rest) >= 3 and rest[0] == "cgroup2":
            return set(rest[2].split(","))
    return None


def read_small(path: Path) -> str | None:
    """A kernel interface file, read whole (they are small; the read is bounded anyway)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_CGROUP_FILE).decode("utf-8", "replace")
    except OSError:
        return None


def keyed(text: str) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.stat, cgroup.events) as integers; others skipped."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values
