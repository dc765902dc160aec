"""An opened lab: its ledger and its nodes (`LabNodes`), and with its lock (`LabSession`).

Commands that only talk to the nodes (exec, status's probe, push, agent deploy, report,
docker) open a `LabNodes` and take no lock, so they run alongside each other and alongside
a long `lab verify`, as they always have. Commands that change the lab (create, start,
stop, destroy, status's libvirt look-up) hold the lab's lock, and only they get a
`LabSession`, which is the only way to the hypervisor and to saving the ledger.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ..errors import LabError
from ..hypervisor.protocol import Hypervisor
from ..remote.fanout import fan_out
from ..remote.seam import Endpoint, NodeShell
from ..remote.waiting import wait_for_ssh
from ..seams import Seams
from ..state import LabState, Ledger, NodeRecord

T = TypeVar("T")


def endpoint_of(state: LabState, ledger: Ledger, node: NodeRecord) -> Endpoint:
    """The node's loopback SSH port with the lab's key and pinned known_hosts."""
    return Endpoint(
        node=node.name, port=node.ssh_port, user=ledger.user, key=state.user_key, known_hosts=state.known_hosts
    )


class LabNodes:
    """A lab's ledger and one SSH connection per node, opened on first use, kept until close()."""

    def __init__(self, state: LabState, ledger: Ledger, seams: Seams) -> None:
        self.state = state
        self.ledger = ledger
        self.seams = seams
        self._shells: dict[str, NodeShell] = {}
        self._shells_lock = threading.Lock()

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return endpoint_of(self.state, self.ledger, node)

    def shell(self, node: NodeRecord) -> NodeShell:
        """The node's connection for this command; the first call opens it."""
        with self._shells_lock:
            found = self._shells.get(node.name)
        return found if found is not None else self._keep(node, self.seams.connect(self.endpoint(node)))

    def wait_for_shell(self, node: NodeRecord, timeout: float, still_booting: Callable[[], str | None]) -> NodeShell:
        """As shell(), for a node still booting: retried until sshd lets us in."""
        return self._keep(node, wait_for_ssh(self.seams.connect, self.endpoint(node), timeout, still_booting))

    def _keep(self, node: NodeRecord, shell: NodeShell) -> NodeShell:
        with self._shells_lock:
            previous = self._shells.setdefault(node.name, shell)
        if previous is not shell:  # another thread connected first: one connection per node
            shell.close()
        return previous

    def on_each(self, nodes: Sequence[NodeRecord], work: Callable[[NodeShell], T]) -> dict[str, T | Exception]:
        """WORK on each node's shell at once; each node's result, or what kept it from one."""
        by_name = {node.name: node for node in nodes}
        return fan_out(list(by_name), lambda name: work(self.shell(by_name[name])))

    def close(self) -> None:
        with self._shells_lock:
            shells, self._shells = list(self._shells.values()), {}
        for shell in shells:
            with contextlib.suppress(Exception):
                shell.close()


class LabSession(LabNodes):
    """A lab opened under its lock: the hypervisor, and saving the ledger (thread-safely).

    Made only while `state.locked()` is held (see `locked_session`); constructing one
    without the lock is refused, so the claim cannot drift from the code again.
    """

    def __init__(self, state: LabState, ledger: Ledger, seams: Seams) -> None:
        if not state.lock_held:
            raise LabError(f"internal error: lab {state.name}'s session was opened without its lock")
        super().__init__(state, ledger, seams)
        self._hypervisor: Hypervisor | None = None
        self._hypervisor_lock = threading.Lock()
        self._save_lock = threading.Lock()

    @property
    def hypervisor(self) -> Hypervisor:
        """The lab's hypervisor connection, opened on first use (an unreachable URI fails here)."""
        with self._hypervisor_lock:
            if self._hypervisor is None:
                self._hypervisor = self.seams.hypervisor(self.ledger.uri, self._qemu_marker)
            return self._hypervisor

    def _qemu_marker(self, domain: str) -> str | None:
        """A node's QEMU is the process whose command line names its own overlay."""
        for record in self.ledger.nodes.values():
            if record.domain == domain:
                return record.overlay
        return None

    def save(self) -> None:
        with self._save_lock:
            self.state.save(self.ledger)

    def console_tail(self, node: NodeRecord, lines: int = 8) -> str:
        path = Path(node.console_log)
        if not path.is_file():
            return "(no console output)"
        text = path.read_text(errors="replace").replace("\r", "")
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(console log empty)"

    def close(self) -> None:
        super().close()
        with self._hypervisor_lock:
            hypervisor, self._hypervisor = self._hypervisor, None
        if hypervisor is not None:
            hypervisor.close()


@contextmanager
def reaching(name: str, seams: Seams) -> Iterator[LabNodes]:
    """The lab's nodes, without its lock; every connection closes at the end."""
    state = LabState(name)
    nodes = LabNodes(state, state.load(), seams)
    try:
        yield nodes
    finally:
        nodes.close()


@contextmanager
def locked_session(state: LabState, seams: Seams, ledger: Ledger | None = None) -> Iterator[LabSession]:
    """Hold the lab's lock (LabBusyError if another command has it) for the session's life.

    The ledger is read under the lock unless LEDGER (a new lab's) is given.
    """
    with state.locked():
        session = LabSession(state, ledger if ledger is not None else state.load(), seams)
        try:
            yield session
        finally:
            session.close()


@contextmanager
def opened(name: str, seams: Seams) -> Iterator[LabSession]:
    state = LabState(name)
    state.load()  # a missing lab is a clear error here; taking the lock would create its dir
    with locked_session(state, seams) as session:
        yield session
