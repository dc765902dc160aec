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
from pathlib import Path

from ..fsutil import rmtree

log = logging.getLogger(__name__)
CONTROLLERS = ("cpu", "memory", "pids")


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
