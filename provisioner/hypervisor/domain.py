"""A node's domain: its XML, and finding its QEMU process on this host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..templating import render
from .accel import Acceleration

EMULATOR = "/usr/bin/qemu-system-x86_64"


@dataclass(frozen=True)
class LinkPort:
    mac: str
    local_port: int
    remote_port: int


@dataclass(frozen=True)
class DomainSpec:
    """What the domain template needs; one per node."""

    name: str
    lab: str
    node: str
    memory_mib: int
    cpus: int
    accel: Acceleration
    kernel: Path
    initrd: Path
    cmdline: str
    overlay: Path
    seed: Path
    console_log: Path
    ssh_port: int
    management_mac: str
    links: list[LinkPort] = field(default_factory=list)
    emulator: str = EMULATOR

    def to_xml(self) -> str:
        return render("domain.xml.j2", **vars(self))


def qemu_pids(marker: str) -> list[int]:
    """PIDs of QEMU processes whose command line names this marker (a lab's own path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and any(marker.encode() in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


def resident_memory_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
