"""Use cases that talk to each node's container engine: re-deploy it, push images to it."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

from .. import agent
from ..errors import LabError, RemoteError, UserInputError
from ..remote.fanout import first_failure
from ..remote.seam import NodeShell
from ..remote.tempdir import remote_tempdir
from ..seams import Seams
from .access import node_record
from .session import reaching


def deploy_agent(name: str, seams: Seams) -> list[str]:
    """Idempotent: an unchanged agent keeps running, and containers survive a changed one."""

    def deploy_one(shell: NodeShell) -> str:
        agent.deploy(shell)
        return shell.node

    with reaching(name, seams) as lab:
        return list(first_failure(lab.on_each(list(lab.ledger.nodes.values()), deploy_one)).values())


def load_command(workdir: str, remote: str) -> str:
    """Load the uploaded tarball, then remove its private directory whatever the outcome."""
    return f"labctl load -i {shlex.quote(remote)}; rc=$?; rm -rf {shlex.quote(workdir)}; exit $rc"


def push_image(name: str, node: str, archive: Path, seams: Seams) -> str:
    """Send a docker-save or OCI-layout tarball from the host and load it into NODE's engine."""
    if not archive.is_file():
        raise UserInputError(f"{archive}: no such file")
    with reaching(name, seams) as lab:
        shell = lab.shell(node_record(lab.ledger, node))
        workdir = remote_tempdir(shell, "lab-push")
        remote = f"{workdir}/image.tar"
        try:
            shell.put(archive, remote)
        except BaseException:
            with contextlib.suppress(LabError):  # the upload's own error is the one to report
                shell.run(f"rm -rf {shlex.quote(workdir)}")
            raise
        result = shell.run(load_command(workdir, remote))
    if not result.ok:
        raise RemoteError(f"node {node}: loading {archive.name} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()
