"""Use cases that talk to each node's container engine: re-deploy it, push images to it, start
the lab file's containers in it."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from urllib.parse import quote

from labagent.contract import ContainerSpec

from .. import agent, engineapi
from ..createbody import create_body
from ..errors import BootError, EngineApiError, LabError, RemoteError, UserInputError
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


def start_containers(shell: NodeShell, containers: dict[str, ContainerSpec]) -> None:
    """Create and start each container through the node's engine API, in the lab file's order.

    A name the engine already has is refused (409), as `docker run --name` is: the lab file's
    containers are started once, on the node's first boot.
    """
    for name, spec in containers.items():
        failure = f"node {shell.node}: container {name} did not start"
        try:
            body = create_body(spec)
        except ValueError as error:
            raise BootError(f"{failure}: {error}") from error
        try:
            created = engineapi.request(shell, "POST", "/containers/create", {"name": name}, body).body
            cid = created.get("Id") if isinstance(created, dict) else None
            if not isinstance(cid, str) or not cid:
                raise BootError(f"{failure}: the engine's create reply has no Id: {created!r:.200}")
            engineapi.request(shell, "POST", f"/containers/{quote(cid, safe='')}/start")
        except EngineApiError as error:
            raise BootError(f"{failure}: {error.reason}") from error
