"""`lab destroy`: remove everything the ledger names, and then the lab's directory.

It trusts nothing but the ledger and the lab's own directory: the lab file may be gone or
edited, and `lab create` may have died at any point.
"""

from __future__ import annotations

import shutil

from ..errors import LabError
from ..hypervisor.domain import qemu_pids, terminate
from ..state import LabState
from .session import LabSession


def teardown(session: LabSession) -> list[str]:
    """Remove domains, processes and files; returns the problems met, if any."""
    problems: list[str] = []
    try:
        domains = session.domains
        for record in session.ledger.nodes.values():
            try:
                domains.remove(record.domain)
            except LabError as error:
                problems.append(str(error))
    except LabError as error:
        problems.append(f"libvirt: {error}")
    session.close()
    kill_leftovers(session.state)
    return problems


def kill_leftovers(state: LabState) -> None:
    """QEMU processes still pointing into the lab's directory, ended by their PID."""
    for pid in qemu_pids(str(state.dir) + "/"):
        terminate(pid)


def remove_state(state: LabState) -> None:
    kill_leftovers(state)
    shutil.rmtree(state.dir, ignore_errors=True)


def destroy(name: str) -> list[str] | None:
    """Idempotent: returns None when there was nothing to destroy."""
    state = LabState(name)
    if not state.dir.exists():
        return None
    problems: list[str] = []
    with state.locked():
        if state.exists():
            session = LabSession(state, state.load())
            problems = teardown(session)
        remove_state(state)
    return problems


def destroy_all() -> dict[str, list[str] | None]:
    from ..state import all_labs

    return {lab.name: destroy(lab.name) for lab in all_labs()}
