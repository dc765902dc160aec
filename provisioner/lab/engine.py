"""Use cases that talk to each node's container engine: re-deploy it, push images to it."""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import agent
from ..errors import RemoteError, UserInputError
from ..remote import open_checked, remote_tempdir, run
from ..state import LabState
from .access import node_record
from .session import LabSession


def deploy_agent(name: str) -> list[str]:
    """Idempotent: an unchanged agent keeps running, and containers survive a changed one."""
    state = LabState(name)
    session = LabSession(state, state.load())
    records = list(session.ledger.nodes.values())

    def deploy_one(node: str) -> str:
        connection = open_checked(session.endpoint(session.ledger.nodes[node]))
        try:
            agent.deploy(connection, node)
        finally:
            connection.close()
        return node

    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        return list(pool.map(deploy_one, [record.name for record in records]))


def load_command(workdir: str, remote: str) -> str:
    """Load the uploaded tarball, then remove its private directory whatever the outcome."""
    return f"labctl load -i {shlex.quote(remote)}; rc=$?; rm -rf {shlex.quote(workdir)}; exit $rc"


def push_image(name: str, node: str, archive: Path) -> str:
    """Send a docker-save or OCI-layout tarball from the host and load it into NODE's engine."""
    if not archive.is_file():
        raise UserInputError(f"{archive}: no such file")
    state = LabState(name)
    session = LabSession(state, state.load())
    record = node_record(session.ledger, node)
    connection = open_checked(session.endpoint(record))
    try:
        workdir = remote_tempdir(connection, node, "lab-push")
        remote = f"{workdir}/image.tar"
        try:
            connection.put(str(archive), remote)
        except BaseException:
            run(connection, f"rm -rf {shlex.quote(workdir)}")
            raise
        code, out, err = run(connection, load_command(workdir, remote))
    finally:
        connection.close()
    if code != 0:
        raise RemoteError(f"node {node}: loading {archive.name} failed: {(err or out).strip()}")
    return out.strip()
