"""Fake kernel seams (network, mounts, whiteouts, crun) shared by the fixtures and fakeengine.py."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
from pathlib import Path
from typing import Any

from labagent.engine import Seams
from labagent.network.interface import SlotWiring
from labagent.network.nftrules import PortRule
from labagent.runtime.cgroups import Cgroups
from labagent.runtime.crun import Runtime


class FakeNetwork:
    """Records what the engine asks of the network; fails on demand."""

    gateway = "172.31.0.1"
    prefix = 24

    def __init__(self) -> None:
        self.attached: dict[str, str] = {}
        self.rules: list[PortRule] = []
        self.busy_ports: set[int] = set()
        self.fail_attach = False
        self.set_up = 0

    def setup(self) -> None:
        self.set_up += 1

    def slot_wiring(self) -> SlotWiring | None:
        return None  # no pool: every start wires its own netns

    def netns_path(self, cid: str) -> str:
        return f"/run/netns/lab-{cid[:12]}"

    def attach(self, cid: str, ip: str) -> str:
        if self.fail_attach:
            raise RuntimeError("veth creation failed")
        self.attached[cid] = ip
        return "02:42:ac:1f:00:02"

    def detach(self, cid: str, veth: str = "") -> None:
        self.attached.pop(cid, None)

    def publish(self, rules: list[PortRule]) -> None:
        self.rules = list(rules)

    def port_in_use(self, port: int, proto: str, host_ip: str = "") -> bool:
        return port in self.busy_ports


class PooledFakeNetwork(FakeNetwork):
    """A FakeNetwork that can also build netns-pool slots (names only)."""

    def __init__(self) -> None:
        super().__init__()
        self.slots: dict[str, str] = {}  # netns -> veth, built and not yet destroyed
        self.claimed: dict[str, str] = {}  # cid -> slot netns
        self.detached: list[tuple[str, str]] = []
        self.swept = 0

    def slot_wiring(self) -> SlotWiring:
        return self

    def sweep_pool(self) -> None:
        self.swept += 1

    def build_slot(self, name: str, veth: str, ip: str) -> str:
        self.slots[name] = veth
        return "02:42:ac:1f:00:99"

    def destroy_slot(self, name: str, veth: str) -> None:
        self.slots.pop(name, None)

    def claim(self, slot: str, cid: str) -> None:
        self.slots.pop(slot)
        self.claimed[cid] = slot

    def detach(self, cid: str, veth: str = "") -> None:
        super().detach(cid, veth)
        self.detached.append((cid, veth))


class FakeBridges:
    """User-defined networks' kernel side, recorded: bridges, netns, veths and the last ruleset."""

    def __init__(self) -> None:
        self.bridges: dict[str, tuple[str, int]] = {}  # name -> (gateway, prefix)
        self.netns: set[str] = set()  # container ids with a netns made here
        self.veths: dict[str, tuple[str, str, str, str]] = {}  # veth -> (cid, bridge, ifname, ip)
        self.routes_text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        self.ruleset: dict[str, Any] = {}
        self.fail_plug = False
        self.fail_plug_after: int | None = None  # fail once this many more plugs succeeded

    def add_bridge(self, name: str, gateway: str, prefix: int) -> None:
        self.bridges[name] = (gateway, prefix)

    def remove_bridge(self, name: str) -> None:
        self.bridges.pop(name, None)

    def ensure_netns(self, cid: str) -> None:
        self.netns.add(cid)

    def remove_netns(self, cid: str) -> None:
        self.netns.discard(cid)

    def plug(self, cid: str, bridge: str, veth: str, ifname: str, ip: str, prefix: int,
             gateway: str = "") -> str:
        if self.fail_plug_after is not None:
            self.fail_plug = self.fail_plug_after <= 0
            self.fail_plug_after -= 1
        if self.fail_plug:
            raise OSError(17, "File exists")
        assert bridge in self.bridges
        self.veths[veth] = (cid, bridge, ifname, ip)
        return "02:42:" + ":".join(f"{int(o):02x}" for o in ip.split("."))

    def unplug(self, veth: str) -> None:
        self.veths.pop(veth, None)

    def routes(self) -> str:
        return self.routes_text

    def apply(self, ruleset: dict[str, Any]) -> None:
        self.ruleset = ruleset


class FakeMounter:
    def __init__(self) -> None:
        self.mounted: set[Path] = set()

    def mount(self, lowers: list[Path], upper: Path, work: Path, merged: Path) -> None:
        assert all(p.is_dir() for p in lowers)
        self.mounted.add(merged)

    def unmount(self, merged: Path) -> None:
        self.mounted.discard(merged)

    def is_mounted(self, merged: Path) -> bool:
        return merged in self.mounted


def _signature(path: Path) -> tuple[int, int, int, str]:
    st = path.lstat()
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    return st.st_mode, st.st_size, st.st_mtime_ns, link


def _tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = _signature(path)
    return found


def _copy(src: Path, dst: Path) -> None:
    """A file or symlink copied with its mode, times and owner (shutil.copy2 drops the owner)."""
    if src.is_symlink():
        dst.symlink_to(os.readlink(src))
    else:
        shutil.copy2(src, dst)
    st = src.lstat()
    os.lchown(dst, st.st_uid, st.st_gid)


def _is_whiteout(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class MergingMounter(FakeMounter):
    """A fake overlay mount that copies: the lowers then the upper into merged at mount (upper
    whiteouts delete), and at unmount what changed in merged back into the upper (deletions of
    lower files as 0:0 whiteouts), then merged is emptied, as an unmounted mountpoint is.

    What the container's fake process writes straight into the upper dir (fakecrun's cwd) is kept.
    Opted into with LAB_FAKE_MERGED_ROOTFS=1 (tests of docker cp, export and diff).
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers: dict[Path, tuple[list[Path], Path, dict[str, tuple[int, int, int, str]]]] = {}

    def mount(self, lowers: list[Path], upper: Path, work: Path, merged: Path) -> None:
        assert merged not in self.mounted, f"{merged} mounted twice"  # a real overlay would refuse
        super().mount(lowers, upper, work, merged)
        for layer in [*lowers, upper]:
            for dirpath, dirnames, filenames in os.walk(layer):
                rel = Path(dirpath).relative_to(layer)
                for name in [*dirnames, *filenames]:
                    src, dst = Path(dirpath) / name, merged / rel / name
                    if layer == upper and _is_whiteout(src):
                        if dst.is_dir() and not dst.is_symlink():
                            shutil.rmtree(dst)
                        elif dst.exists() or dst.is_symlink():
                            dst.unlink()
                    elif src.is_dir() and not src.is_symlink():
                        dst.mkdir(exist_ok=True)
                        shutil.copystat(src, dst)
                    else:
                        if dst.is_symlink() or dst.exists():
                            dst.unlink()
                        _copy(src, dst)
        self.layers[merged] = (lowers, upper, _tree(merged))

    def unmount(self, merged: Path) -> None:
        if merged in self.layers:
            lowers, upper, before = self.layers.pop(merged)
            after = _tree(merged)
            for rel, sig in sorted(after.items()):
                if before.get(rel) == sig:
                    continue
                src, dst = merged / rel, upper / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if stat.S_ISDIR(sig[0]):
                    if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
                        dst.unlink()
                    dst.mkdir(exist_ok=True)
                    shutil.copystat(src, dst)
                    continue
                if dst.is_dir() and not dst.is_symlink():
                    shutil.rmtree(dst)
                elif dst.exists() or dst.is_symlink():
                    dst.unlink()
                _copy(src, dst)
            gone: list[str] = []
            for rel in sorted(set(before) - set(after)):
                if any(rel.startswith(g + "/") for g in gone):
                    continue  # under a directory already whited out
                gone.append(rel)
                dst = upper / rel
                if dst.is_dir() and not dst.is_symlink():
                    shutil.rmtree(dst)
                elif dst.exists() or dst.is_symlink():
                    dst.unlink()
                if any((layer / rel).exists() or (layer / rel).is_symlink() for layer in lowers):
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.mknod(dst, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            for child in list(merged.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        super().unmount(merged)


class RecordingWhiteouts:
    def __init__(self) -> None:
        self.whiteouts: list[Path] = []
        self.opaques: list[Path] = []

    def whiteout(self, dirfd: int, name: str, path: Path) -> None:
        self.whiteouts.append(path)

    def opaque(self, dirfd: int, path: Path) -> None:
        self.opaques.append(path)


class FakeCgroups(Cgroups):
    """Cgroups on a plain directory tree; the freezer plays the kernel's part.

    Freezing stops the processes listed in the group's cgroup.procs (SIGSTOP, which, like a
    frozen cgroup, still lets SIGKILL through) and writes `frozen 1` to cgroup.events; thawing
    undoes both. The real code then reads cgroup.events as it does on a node.
    """

    def freeze(self, cid: str, frozen: bool, timeout: float = 10.0) -> None:
        group = self.container_dir(cid)
        if group.is_dir():
            for pid in self.procs(cid):
                try:
                    os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)
                except ProcessLookupError:
                    pass
            (group / "cgroup.events").write_text(f"populated 1\nfrozen {int(frozen)}\n")
        super().freeze(cid, frozen, timeout)


def make_seams(tmp: Path) -> Seams:
    """Seams for an engine rooted in tmp: fake crun script, fake busybox, fake network and mounts."""
    tmp.mkdir(parents=True, exist_ok=True)
    busybox = tmp / "busybox"
    busybox.write_text("#!/bin/sh\necho sh; echo ls; echo cat; echo busybox\n")
    busybox.chmod(0o755)
    crun = tmp / "crun"
    crun.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                    f"import fakecrun\nfakecrun.CGROUP_ROOT = {str(tmp / 'cgroup')!r}\n"
                    "sys.exit(fakecrun.main(sys.argv[1:]))\n")
    crun.chmod(0o755)
    resolv = tmp / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\nnameserver 10.0.2.3\n")
    return Seams(runtime=Runtime(str(crun), tmp / "crun-state"), network=FakeNetwork(), bridges=FakeBridges(),
                 cgroups=FakeCgroups(tmp / "cgroup"),
                 mounter=MergingMounter() if os.environ.get("LAB_FAKE_MERGED_ROOTFS") else FakeMounter(),
                 whiteouts=RecordingWhiteouts(), busybox=busybox, resolv=resolv)
