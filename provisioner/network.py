"""Loopback ports for SSH forwards and UDP links, unique across every lab on this host.

Ports are chosen under a host-wide lock and written to the lab's ledger before the lock is
released, so two labs created at the same time never pick the same port.
"""

from __future__ import annotations

import fcntl
import hashlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import NetworkError
from .state import all_labs

LOOPBACK = "127.0.0.1"


@contextmanager
def allocation_lock(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / "ports.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ports_in_ledgers(state_root: Path) -> set[int]:
    """Every port some lab has recorded, running or not (a stopped lab keeps its ports)."""
    taken: set[int] = set()
    for lab in all_labs(state_root):
        try:
            ledger = lab.load()
        except Exception:  # a lab mid-destroy or a damaged ledger reserves nothing
            continue
        for node in ledger.nodes.values():
            taken.add(node.ssh_port)
            for local, remote in node.link_ports.values():
                taken.update((local, remote))
    return taken


class PortAllocator:
    """Asks the kernel for free ports and skips those another lab has reserved."""

    def __init__(self, reserved: set[int]) -> None:
        self.reserved = set(reserved)

    def tcp(self) -> int:
        return self._free(socket.SOCK_STREAM)

    def udp(self) -> int:
        return self._free(socket.SOCK_DGRAM)

    def _free(self, kind: socket.SocketKind) -> int:
        for _ in range(100):
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind((LOOPBACK, 0))
                port = int(probe.getsockname()[1])
            if port not in self.reserved:
                self.reserved.add(port)
                return port
        raise NetworkError("no free loopback port found: 100 the kernel offered were all reserved by labs")


def port_is_free(port: int, kind: socket.SocketKind = socket.SOCK_STREAM) -> bool:
    """True when nothing is bound to the port (connections lingering in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def mac_address(*parts: str) -> str:
    """Deterministic, locally administered MACs in QEMU's 52:54:00 range."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "52:54:00:" + ":".join(f"{byte:02x}" for byte in digest[:3])
