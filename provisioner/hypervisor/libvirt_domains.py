"""The Hypervisor seam over libvirt: the domain lifecycle on one connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import libvirt

from ..errors import HypervisorError
from .connection import close_connection, open_connection
from .domain import DomainSpec, qemu_pids

log = logging.getLogger(__name__)

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
LOCAL_URIS = ("qemu:///", "qemu+unix:///")


class LibvirtDomains:
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
        log.debug("libvirt: define %s", spec.name)
        try:
            self.connection.defineXML(spec.to_xml())
        except libvirt.libvirtError as error:
            raise HypervisorError(f"node {spec.node}: libvirt rejected its domain: {error}") from error

    def start(self, name: str) -> None:
        domain = self.lookup(name)
        if domain is None:
            raise HypervisorError(f"domain {name} is not defined")
        if self.state(name) == "dead":
            self.kill(name)  # let libvirt forget the vanished process first
        if not domain.isActive():
            log.debug("libvirt: create (start) %s", name)
            try:
                domain.create()
            except libvirt.libvirtError as error:
                raise HypervisorError(f"domain {name} could not start: {error}") from error

    def state(self, name: str) -> str:
        domain = self.lookup(name)
        if domain is None:
            log.debug("libvirt: state %s: missing", name)
            return "missing"
        try:
            code = domain.state()[0]
        except libvirt.libvirtError:
            return "missing"
        state = STATES.get(code, "unknown")
        if state == "running" and self.process_alive is not None and not self.process_alive(name):
            state = "dead"
        log.debug("libvirt: state %s: %s", name, state)
        return state

    def stop(self, name: str, grace_seconds: float = 20.0) -> None:
        """ACPI shutdown first, so the guest's disk is consistent; then pull the plug."""
        domain = self.lookup(name)
        if domain is None or not domain.isActive():
            return
        log.debug("libvirt: shutdown %s", name)
        try:
            domain.shutdown()
        except libvirt.libvirtError as error:
            log.debug("libvirt: shutdown %s refused: %s", name, error)
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
                log.debug("libvirt: destroy %s", name)
                domain.destroy()
        except libvirt.libvirtError as error:
            log.debug("libvirt: destroy %s failed: %s", name, error)

    def remove(self, name: str) -> None:
        self.kill(name)
        domain = self.lookup(name)
        if domain is None:
            return
        log.debug("libvirt: undefine %s", name)
        try:
            domain.undefine()
        except libvirt.libvirtError as error:
            raise HypervisorError(f"domain {name} could not be undefined: {error}") from error

    def names(self) -> list[str]:
        try:
            return sorted(domain.name() for domain in self.connection.listAllDomains())
        except libvirt.libvirtError as error:
            raise HypervisorError(f"libvirt could not list its domains: {error}") from error

    def close(self) -> None:
        close_connection(self.connection)


def open_libvirt(uri: str, qemu_marker: Callable[[str], str | None]) -> LibvirtDomains:
    """The production HypervisorOpener."""
    connection = open_connection(uri)

    def has_qemu_process(domain: str) -> bool:
        """A node's QEMU is the process whose command line names its own overlay."""
        marker = qemu_marker(domain)
        return bool(qemu_pids(marker)) if marker else False

    return LibvirtDomains(connection, has_qemu_process if uri.startswith(LOCAL_URIS) else None)
