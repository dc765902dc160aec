"""The seam for the hypervisor: what the use cases need done to a lab's domains.

provisioner.hypervisor.libvirt_domains implements it over libvirt; unit tests pass a fake
that holds domains in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .domain import DomainSpec

# The states `state()` answers, as `lab status` shows them.
STATES = ("running", "paused", "stopping", "stopped", "crashed", "suspended", "unknown", "dead", "missing")


class Hypervisor(Protocol):
    """The domains on one hypervisor connection, by name.

    Failures are provisioner.errors.HypervisorError, with the hypervisor's own error as cause.
    """

    def define(self, spec: DomainSpec) -> None:
        """Define (or redefine) a node's domain; it does not start."""
        ...

    def start(self, name: str) -> None:
        """Boot a defined domain; a running one is left alone, a dead one is cleared first."""
        ...

    def stop(self, name: str, grace_seconds: float = 20.0) -> None:
        """Shut down cleanly within GRACE_SECONDS, else pull the plug; a missing domain is stopped."""
        ...

    def remove(self, name: str) -> None:
        """Destroy and undefine; a missing domain is already removed."""
        ...

    def names(self) -> list[str]:
        """Every domain defined on this connection (a lab's and any other)."""
        ...

    def state(self, name: str) -> str:
        """One of STATES: "missing" when not defined, "dead" when its QEMU vanished."""
        ...

    def close(self) -> None: ...


HypervisorOpener = Callable[[str, Callable[[str], str | None]], Hypervisor]
"""Opens the hypervisor at a URI. The second argument maps a domain name to a marker
its QEMU's command line holds (the node's overlay path), or None for a domain lab does not
know: a local hypervisor checks libvirt's word against the processes that really run."""
