"""Reaching a lab's nodes: `lab ssh`, `lab ssh-config`, `lab exec` and inventories."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import RemoteError, UserInputError
from ..names import node_name
from ..remote.seam import CommandResult, NodeShell
from ..seams import Seams
from ..state import LabState, Ledger, NodeRecord
from ..templating import render
from .session import reaching


def node_record(ledger: Ledger, node: str) -> NodeRecord:
    """The node's record; a name that is not a DNS label is refused before the lookup."""
    node_name(node)
    try:
        return ledger.nodes[node]
    except KeyError:
        known = ", ".join(ledger.nodes)
        raise UserInputError(f"lab {ledger.name} has no node {node!r} (nodes: {known})") from None


def ssh_argv(name: str, node: str, command: list[str], tty: bool) -> list[str]:
    """OpenSSH with the lab's key and pinned known_hosts; the CLI execs it."""
    state = LabState(name)
    ledger = state.load()
    record = node_record(ledger, node)
    argv = [
        "ssh", "-p", str(record.ssh_port), "-i", str(state.user_key),
        "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={state.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
    ]
    if tty:
        argv.append("-t")
    return argv + [f"{ledger.user}@127.0.0.1", *command]


def ssh_config(name: str) -> str:
    state = LabState(name)
    ledger = state.load()
    nodes = list(ledger.nodes.values())
    return render(
        "ssh_config.j2", lab=ledger.name, nodes=nodes, first_node=nodes[0].name if nodes else "",
        user=ledger.user, identity_file=state.user_key, known_hosts=state.known_hosts,
    )


@dataclass
class ExecResult:
    node: str
    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None = None


def _why(error: Exception) -> str:
    """What kept a node from running the command: the transport's own words, as ssh would say."""
    cause = error.__cause__ if isinstance(error, RemoteError) and error.__cause__ is not None else error
    return f"{type(cause).__name__}: {cause}"


def execute(name: str, nodes: list[str] | None, command: str, seams: Seams) -> list[ExecResult]:
    """Run one command on the chosen nodes (all when None) at once."""

    def run(shell: NodeShell) -> CommandResult:
        return shell.run(command)

    with reaching(name, seams) as lab:
        ledger = lab.ledger
        chosen = [node_record(ledger, node) for node in nodes] if nodes else list(ledger.nodes.values())
        results = lab.on_each(chosen, run)
    return [
        ExecResult(node, None, "", "", _why(result))
        if isinstance(result, Exception)
        else ExecResult(node, result.exit_code, result.stdout, result.stderr)
        for node, result in results.items()
    ]


def inventory(name: str, style: str) -> str:
    state = LabState(name)
    ledger = state.load()
    if style == "ansible":
        hosts = {
            record.name: {
                "ansible_host": "127.0.0.1", "ansible_port": record.ssh_port,
                "ansible_user": ledger.user,
                "ansible_ssh_private_key_file": str(state.user_key),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={state.known_hosts} -o StrictHostKeyChecking=yes"
                ),
            }
            for record in ledger.nodes.values()
        }
        return json.dumps({"all": {"children": {ledger.name: {"hosts": hosts}}}}, indent=2) + "\n"
    if style == "testinfra":
        return "\n".join(f"ssh://{record.name}" for record in ledger.nodes.values()) + "\n"
    raise UserInputError(f"--format must be ansible or testinfra, not {style!r}")
