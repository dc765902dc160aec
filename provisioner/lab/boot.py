"""Bringing nodes up: start their domains, then wait for SSH and cloud-init, in parallel."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import agent
from ..errors import BootError, LabError
from ..hypervisor.domain import qemu_pids
from ..processes import identify
from ..progress import Reporter
from ..remote.fanout import fan_out, first_failure
from ..remote.seam import NodeShell
from ..state import NodeRecord
from .engine import start_containers
from .session import LabSession

DEFAULT_TIMEOUT = 300.0
CLOUD_INIT_RESULT = "/run/cloud-init/result.json"
# First-boot state (host keys above all) must survive a QEMU killed right after; an idle
# TCG guest can leave dirty pages unwritten for minutes, hence the sync.
WAIT_FOR_CLOUD_INIT = (
    f"until [ -e {CLOUD_INIT_RESULT} ]; do sleep 0.2; done; sync; cat {CLOUD_INIT_RESULT}"
)
# Booting fills the page cache with files that are not read again (cloud-init's Python
# above all). Dropping the clean caches frees those pages, and the balloon's free page
# reporting hands them back to the host. Reporting only sees free blocks of 2 MiB by
# default, which the freed cache rarely forms; 32 KiB blocks return about 50 MiB per
# node. (Linux 6.1 resets the order when virtio_balloon loads, so a boot argument does
# not hold.)
RETURN_BOOT_MEMORY = (
    "sync; echo 3 | sudo -n tee /sys/module/page_reporting/parameters/page_reporting_order "
    "/proc/sys/vm/drop_caches >/dev/null"
)


def bring_up(
    session: LabSession,
    names: list[str],
    reporter: Reporter,
    timeout: float = DEFAULT_TIMEOUT,
    parallel: int = 4,
    first_boot: bool = False,
) -> None:
    """Boot each node and wait until it is ready; the first failure is raised."""

    def one(name: str) -> None:
        _bring_up_one(session, session.ledger.nodes[name], reporter, timeout, first_boot)

    first_failure(fan_out(names, one, parallel))


def _bring_up_one(
    session: LabSession, record: NodeRecord, reporter: Reporter, timeout: float, first_boot: bool
) -> None:
    try:
        _boot(session, record, reporter, timeout, first_boot)
    except LabError as error:
        reporter.done(record.name, f"failed: {error}")
        raise
    except Exception as error:  # keep the node's name on unexpected failures too
        reporter.done(record.name, "failed")
        raise BootError(f"node {record.name}: {type(error).__name__}: {error}") from error


def _boot(session: LabSession, record: NodeRecord, reporter: Reporter, timeout: float, first_boot: bool) -> None:
    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(phase: str) -> None:
        timings[phase] = round(time.monotonic() - started, 2)

    hypervisor = session.hypervisor
    reporter.phase(record.name, "starting VM")
    Path(record.console_log).unlink(missing_ok=True)
    hypervisor.start(record.domain)
    mark("vm_started")
    pids = qemu_pids(record.overlay)
    record.pid = pids[0] if pids else None
    # Who that PID is, so `lab destroy` can end this QEMU (and never a later holder of its PID).
    record.process = identify(record.pid) if record.pid else None
    session.save()

    def still_booting() -> str | None:
        state = hypervisor.state(record.domain)
        if state != "running":
            return f"the VM is {state}; console: {session.console_tail(record)}"
        return None

    reporter.phase(record.name, "waiting for SSH")
    deadline = started + timeout
    try:
        shell = session.wait_for_shell(record, timeout, still_booting)
    except LabError as error:
        raise BootError(f"{error}; console: {session.console_tail(record)}") from error
    mark("ssh")
    # The agent needs only the user and sudo, which exist once SSH lets us in, so
    # its upload and start overlap the end of cloud-init.
    reporter.phase(record.name, "deploying the guest agent")
    agent.install(shell, agent.upload(shell))
    reporter.phase(record.name, "waiting for cloud-init")
    _wait_for_cloud_init(session, record, shell, timeout, deadline)
    mark("cloud_init")
    reporter.phase(record.name, "waiting for the guest agent")
    agent.wait_until_answering(shell)
    mark("agent")
    if first_boot and record.containers:
        reporter.phase(record.name, f"starting {len(record.containers)} container(s)")
        start_containers(shell, record.containers)
        mark("containers")
    reporter.phase(record.name, "returning boot memory to the host")
    shell.run(RETURN_BOOT_MEMORY, timeout=60)
    timings["ready"] = timings[list(timings)[-1]]
    record.timings = timings
    session.save()
    reporter.done(record.name, f"ready in {timings['ready']:.1f} s")


def _wait_for_cloud_init(
    session: LabSession, record: NodeRecord, shell: NodeShell, timeout: float, deadline: float
) -> None:
    """Wait for cloud-init's result file rather than run `cloud-init status --wait`.

    The status command is a Python program importing cloud-init: seconds of TCG time.
    """
    try:
        remaining = max(5.0, deadline - time.monotonic())
        result = shell.run(WAIT_FOR_CLOUD_INIT, timeout=remaining)
        if result.ok:
            errors = json.loads(result.stdout)["v1"]["errors"]
        else:
            errors = [(result.stderr or result.stdout).strip() or "no output"]
    except Exception as error:
        raise BootError(
            f"node {record.name}: cloud-init did not finish in {timeout:.0f} s ({error}); "
            f"console: {session.console_tail(record)}"
        ) from error
    if errors:
        raise BootError(f"node {record.name}: cloud-init failed: {str(errors[0]).splitlines()[0]}")
