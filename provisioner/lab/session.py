"""An opened lab: its state dir, its ledger, and its libvirt connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..hypervisor.connection import close_connection, open_connection
from ..hypervisor.domain import Domains, qemu_pids
from ..remote import Endpoint
from ..state import LabState, Ledger, NodeRecord


class LabSession:
    """Holds the lab's lock for as long as it is open; saves the ledger thread-safely."""

    def __init__(self, state: LabState, ledger: Ledger) -> None:
        self.state = state
        self.ledger = ledger
        self._connection: Any = None
        self._save_lock = threading.Lock()

    def open(self) -> None:
        if self._connection is None:
            self._connection = open_connection(self.ledger.uri)

    @property
    def domains(self) -> Domains:
        if self._connection is None:
            self._connection = open_connection(self.ledger.uri)
        local = self.ledger.uri.startswith(("qemu:///", "qemu+unix:///"))
        return Domains(self._connection, self._has_qemu_process if local else None)

    def _has_qemu_process(self, domain: str) -> bool:
        """A node's QEMU is the process whose command line names its own overlay."""
        for record in self.ledger.nodes.values():
            if record.domain == domain:
                return bool(qemu_pids(record.overlay))
        return False

    def save(self) -> None:
        with self._save_lock:
            self.state.save(self.ledger)

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return Endpoint(
            node=node.name,
            port=node.ssh_port,
            user=self.ledger.user,
            key=self.state.user_key,
            known_hosts=self.state.known_hosts,
        )

    def console_tail(self, node: NodeRecord, lines: int = 8) -> str:
        path = Path(node.console_log)
        if not path.is_file():
            return "(no console output)"
        text = path.read_text(errors="replace").replace("\r", "")
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(console log empty)"

    def close(self) -> None:
        if self._connection is not None:
            close_connection(self._connection)
            self._connection = None


@contextmanager
def opened(name: str) -> Iterator[LabSession]:
    state = LabState(name)
    state.load()  # a missing lab is a clear error here; taking the lock would create its dir
    with state.locked():
        session = LabSession(state, state.load())
        try:
            yield session
        finally:
            session.close()
