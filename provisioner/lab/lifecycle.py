"""`lab stop` and `lab start`: the disks stay; start also heals a node killed behind lab's back."""

from __future__ import annotations

from ..progress import Reporter
from ..seams import Seams
from .boot import DEFAULT_TIMEOUT, bring_up
from .session import opened


def stop(name: str, reporter: Reporter, seams: Seams) -> None:
    with opened(name, seams) as session:
        hypervisor = session.hypervisor
        for record in session.ledger.nodes.values():
            reporter.phase(record.name, "shutting down")
            hypervisor.stop(record.domain)
            record.pid = None
            record.process = None
            reporter.done(record.name, "stopped")
        session.ledger.phase = "stopped"
        session.save()


def start(name: str, reporter: Reporter, seams: Seams, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Starts the nodes that are not running (stopped, dead, missing); returns their names."""
    with opened(name, seams) as session:
        hypervisor = session.hypervisor
        down = [n for n, r in session.ledger.nodes.items() if hypervisor.state(r.domain) != "running"]
        for name_ in session.ledger.nodes:
            if name_ not in down:
                reporter.done(name_, "already running")
        if down:
            bring_up(session, down, reporter, timeout)
        session.ledger.phase = "ready"
        session.save()
        return down
