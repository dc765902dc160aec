"""Domain XML and lifecycle: define, start, inspect, stop and remove a node's VM."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from ..errors import HypervisorError
from ..templating import render
from .accel import Acceleration

EMULATOR = "/usr/bin/qemu-system-x86_64"

STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "unknown",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "stopping",
    libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}


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


class Domains:
    """The lab's domains on one libvirt connection, looked up by name.

    On a local hypervisor, `process_alive` double-checks libvirt: a freshly opened
    embedded driver reports a QEMU killed behind its back as running until its
    reconnect thread notices.
    """

    def __init__(
        self,
        connection: libvirt.virConnect,
        process_alive: Callable[[str], bool] | None = None,
    ) -> None:
        self.connection = connection
        self.process_alive = process_alive

    def lookup(self, name: str) -> libvirt.virDomain | None:
        try:
            return self.connection.lookupByName(name)
        except libvirt.libvirtError:
            return None

    def define(self, spec: DomainSpec) -> None:
        try:
            self.connection.defineXML(spec.to_xml())
        except libvirt.libvirtError as error:
            raise HypervisorError(f"node {spec.node}: libvirt rejected its domain: {error}") from None

    def start(self, name: str) -> None:
        domain = self.lookup(name)
        if domain is None:
            raise HypervisorError(f"domain {name} is not defined")
        if self.state(name) == "dead":
            self.kill(name)  # let libvirt forget the vanished process first
        if not domain.isActive():
            try:
                domain.create()
            except libvirt.libvirtError as error:
                raise HypervisorError(f"domain {name} could not start: {error}") from None

    def state(self, name: str) -> str:
        domain = self.lookup(name)
        if domain is None:
            return "missing"
        try:
            code = domain.state()[0]
        except libvirt.libvirtError:
            return "missing"
        state = STATES.get(code, "unknown")
        if state == "running" and self.process_alive is not None and not self.process_alive(name):
            return "dead"
        return state

    def stop(self, name: str, grace_seconds: float = 20.0) -> None:
        """ACPI shutdown first, so the guest's disk is consistent; then pull the plug."""
        domain = self.lookup(name)
        if domain is None or not domain.isActive():
            return
        try:
            domain.shutdown()
        except libvirt.libvirtError:
            pass
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not domain.isActive():
                return
            time.sleep(0.5)
        self.kill(name)

    def kill(self, name: str) -> None:
        domain = self.lookup(name)
        if domain is None:
            return
        try:
            if domain.isActive():
                domain.destroy()
        except libvirt.libvirtError:
            pass

    def remove(self, name: str) -> None:
        """Destroy and undefine; a missing domain is already removed."""
        self.kill(name)
        domain = self.lookup(name)
        if domain is None:
            return
        try:
            domain.undefine()
        except libvirt.libvirtError as error:
            raise HypervisorError(f"domain {name} could not be undefined: {error}") from None


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
