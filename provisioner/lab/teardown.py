"""`lab destroy`: remove what the lab's ledger records, and nothing else.

It trusts nothing but the ledger: the lab file may be gone or edited, and `lab create`
may have died at any point. A directory without a ledger is not known to be lab's and is
left alone; every path removed is one of the lab's layout (state.LabState.layout) and
lies inside the lab's directory; a process is ended only by a PID the ledger holds, and
only while that PID is still the process recorded (processes.terminate).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError
from ..hypervisor.connection import embedded_root
from ..processes import ProcessId, terminate
from ..removal import OutsideError, remove_beneath, remove_tree_beneath
from ..seams import Seams
from ..state import LabState, Ledger, all_labs
from .session import LabSession

ABSENT, DESTROYED, REFUSED = "absent", "destroyed", "refused"


@dataclass
class Destroyed:
    """What destroy did: ABSENT (nothing there), DESTROYED (with any problems), REFUSED."""

    outcome: str
    problems: list[str] = field(default_factory=list)


def teardown(session: LabSession) -> list[str]:
    """Remove domains and end recorded processes; returns the problems met, if any."""
    problems: list[str] = []
    records = list(session.ledger.nodes.values())
    if records:  # no node recorded, no domain defined: the hypervisor has nothing of the lab's
        try:
            hypervisor = session.hypervisor
            for record in records:
                try:
                    hypervisor.remove(record.domain)
                except LabError as error:
                    problems.append(str(error))
        except LabError as error:
            problems.append(f"libvirt: {error}")
    session.close()
    problems += end_recorded_processes(session.ledger)
    return problems


def recorded_processes(ledger: Ledger) -> dict[str, ProcessId]:
    found = {f"node {name}'s QEMU": r.process for name, r in ledger.nodes.items() if r.process}
    found.update({f"node {name}'s docker proxy": p for name, p in ledger.proxies.items()})
    return found


def end_recorded_processes(ledger: Ledger) -> list[str]:
    """A QEMU libvirt could not stop, a docker-env proxy: by the ledger's PID, if still that process."""
    problems = []
    for what, process in recorded_processes(ledger).items():
        try:
            terminate(process)
        except OSError as error:
            problems.append(f"{what} (pid {process.pid}): {error.strerror}")
    return problems


def remove_recorded(state: LabState, ledger: Ledger) -> list[str]:
    """Remove the lab's files, its libvirt root and its (then empty) directories.

    The ledger goes last, and stays if any of its paths could not be removed, so that a
    second `lab destroy` can finish the job.
    """
    problems: list[str] = []
    layout = state.layout(ledger)
    root = embedded_root(ledger.uri)
    trees = [tree for tree in layout.trees if root is not None and Path(root) == tree]
    for path in layout.files:
        _remove(state, path, problems, tree=False)
    for tree in trees:
        _remove(state, tree, problems, tree=True)
    for directory in layout.dirs:
        with contextlib.suppress(OSError):  # not empty: reported below, with the lab's dir
            remove_beneath(state.dir, directory)
    if problems:
        return problems
    for path in (state.ledger_path, state.lock_path):
        _remove(state, path, problems, tree=False)
    try:
        state.dir.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        left = sorted(str(path.relative_to(state.dir)) for path in state.dir.rglob("*"))
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        problems.append(f"kept {state.dir}: it holds files lab did not make ({shown})")
    return problems


def _remove(state: LabState, path: Path, problems: list[str], tree: bool) -> None:
    try:
        (remove_tree_beneath if tree else remove_beneath)(state.dir, path)
    except OutsideError as error:
        problems.append(f"the ledger names {error}; not removed")
    except OSError as error:
        problems.append(f"{path}: {error.strerror or error}")


def destroy(name: str, seams: Seams) -> Destroyed:
    """Idempotent; only a directory holding this lab's ledger is touched."""
    state = LabState(name)
    if state.dir.is_symlink():
        return Destroyed(REFUSED, [f"{state.dir} is a symbolic link, not a lab's directory; nothing removed"])
    if not state.dir.exists():
        return Destroyed(ABSENT)
    if not state.exists():
        return Destroyed(REFUSED, [
            f"{state.dir} holds no ledger, so nothing in it is known to be lab's; nothing removed"
            " (delete it yourself if it is yours)"
        ])
    with state.locked():
        try:
            ledger = state.load()
        except LabError as error:
            return Destroyed(REFUSED, [f"{error}; nothing removed"])
        problems = teardown(LabSession(state, ledger, seams))
        problems += remove_recorded(state, ledger)
    return Destroyed(DESTROYED, problems)


def destroy_all(seams: Seams) -> dict[str, Destroyed]:
    """Every lab that has a ledger; other directories in the state dir are not labs."""
    return {lab.name: destroy(lab.name, seams) for lab in all_labs() if lab.exists()}
