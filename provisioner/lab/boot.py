"""Bringing nodes up: start their domains, then wait for SSH and cloud-init, in parallel."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import BootError, LabError
from ..hypervisor.domain import qemu_pids
from ..progress import Reporter
from ..remote import run, wait_for_ssh
from ..state import NodeRecord
from .session import LabSession

DEFAULT_TIMEOUT = 300.0


def bring_up(
    session: LabSession,
    names: list[str],
    reporter: Reporter,
    timeout: float = DEFAULT_TIMEOUT,
    parallel: int = 4,
    start: bool = True,
) -> None:
    """Boot each node and wait until it is ready; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names)))) as pool:
        futures = [
            pool.submit(_bring_up_one, session, session.ledger.nodes[name], reporter, timeout, start)
            for name in names
        ]
        errors = [future.exception() for future in futures]
    failures = [error for error in errors if error is not None]
    if failures:
        raise failures[0]


def _bring_up_one(
    session: LabSession, record: NodeRecord, reporter: Reporter, timeout: float, start: bool
) -> None:
    try:
        _boot(session, record, reporter, timeout, start)
    except LabError as error:
        reporter.done(record.name, f"failed: {error}")
        raise
    except Exception as error:  # keep the node's name on unexpected failures too
        reporter.done(record.name, "failed")
        raise BootError(f"node {record.name}: {type(error).__name__}: {error}") from error


def _boot(session: LabSession, record: NodeRecord, reporter: Reporter, timeout: float, start: bool) -> None:
    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(phase: str) -> None:
        timings[phase] = round(time.monotonic() - started, 2)

    domains = session.domains
    if start:
        reporter.phase(record.name, "starting VM")
        Path(record.console_log).unlink(missing_ok=True)
        domains.start(record.domain)
        mark("vm_started")
    pids = qemu_pids(record.overlay)
    record.pid = pids[0] if pids else None
    session.save()

    def still_booting() -> str | None:
        state = domains.state(record.domain)
        if state != "running":
            return f"the VM is {state}; console: {session.console_tail(record)}"
        return None

    reporter.phase(record.name, "waiting for SSH")
    deadline = started + timeout
    try:
        connection = wait_for_ssh(session.endpoint(record), timeout, still_booting)
    except LabError as error:
        raise BootError(f"{error}; console: {session.console_tail(record)}") from None
    mark("ssh")
    reporter.phase(record.name, "waiting for cloud-init")
    try:
        remaining = max(5.0, deadline - time.monotonic())
        code, out, err = run(connection, "cloud-init status --wait", timeout=remaining)
        # First-boot state (host keys above all) must survive a QEMU killed right after;
        # an idle TCG guest can leave dirty pages unwritten for minutes.
        run(connection, "sync", timeout=60)
    except Exception as error:
        raise BootError(
            f"node {record.name}: cloud-init did not finish in {timeout:.0f} s ({error}); "
            f"console: {session.console_tail(record)}"
        ) from None
    finally:
        connection.close()
    if code not in (0, 2):  # 2: done with recoverable warnings
        detail = (out + err).strip().splitlines()[-1:] or ["no output"]
        raise BootError(f"node {record.name}: cloud-init failed: {detail[0]}")
    mark("cloud_init")
    timings["ready"] = timings["cloud_init"]
    record.timings = timings
    session.save()
    reporter.done(record.name, f"ready in {timings['ready']:.1f} s")
