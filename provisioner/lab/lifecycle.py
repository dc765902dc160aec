"""`lab stop` and `lab start`: the disks stay; start also heals a node killed behind lab's back."""

from __future__ import annotations

from ..progress import Reporter
from .boot import DEFAULT_TIMEOUT, bring_up
from .session import opened


def stop(name: str, reporter: Reporter) -> None:
    with opened(name) as session:
        for record in session.ledger.nodes.values():
            reporter.phase(record.name, "shutting down")
            session.domains.stop(record.domain)
            record.pid = None
            record.process = None
            reporter.done(record.name, "stopped")
        session.ledger.phase = "stopped"
        session.save()


def start(name: str, reporter: Reporter, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Starts the nodes that are not running; returns their names."""
    with opened(name) as session:
        domains = session.domains
        down = [n for n, r in session.ledger.nodes.items() if domains.state(r.domain) != "running"]
        for name_ in session.ledger.nodes:
            if name_ not in down:
                reporter.done(name_, "already running")
        if down:
            bring_up(session, down, reporter, timeout)
        session.ledger.phase = "ready"
        session.save()
        return down
