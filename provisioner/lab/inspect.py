"""`lab status` and `lab list`: the ledger reconciled with what libvirt and the guests say."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import agent
from ..errors import LabBusyError
from ..hypervisor.domain import qemu_pids, resident_memory_kib
from ..remote.seam import CommandResult, NodeShell
from ..seams import Seams
from ..state import Ledger, all_labs
from .session import LabNodes, locked_session, reaching

PROBE = (
    "cat /proc/sys/kernel/random/boot_id; cut -d' ' -f1 /proc/uptime; "
    + agent.api_get_command("/containers/json?all=1")
)


@dataclass
class NodeStatus:
    name: str
    state: str
    ssh_port: int
    addresses: dict[str, str]
    pid: int | None = None
    rss_mib: float | None = None
    boot_id: str | None = None
    uptime_s: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    containers: list[dict[str, str]] = field(default_factory=list)


@dataclass
class LabStatus:
    name: str
    phase: str
    uri: str
    accel: str
    nodes: list[NodeStatus]
    links: list[tuple[str, str]]
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(name: str, seams: Seams) -> LabStatus:
    with reaching(name, seams) as lab:
        return status_of(lab)


def status_of(lab: LabNodes) -> LabStatus:
    """The ledger's word, checked against the hypervisor's (under the lock) and the guests'."""
    ledger = lab.ledger
    states = _domain_states(lab)
    nodes = [_node_status(ledger, node, states[node]) for node in ledger.nodes]
    _probe_guests(lab, [n for n in nodes if n.state == "running"])
    return LabStatus(ledger.name, ledger.phase, ledger.uri, ledger.accel, nodes, ledger.links, ledger.timings)


def _domain_states(lab: LabNodes) -> dict[str, str]:
    """Each node's domain state; "busy" while another command holds the lab's lock."""
    try:
        with locked_session(lab.state, lab.seams) as session:
            hypervisor = session.hypervisor
            return {r.name: hypervisor.state(r.domain) for r in lab.ledger.nodes.values()}
    except LabBusyError:
        return {node: "busy" for node in lab.ledger.nodes}


def _node_status(ledger: Ledger, node: str, libvirt_state: str) -> NodeStatus:
    record = ledger.nodes[node]
    pids = qemu_pids(record.overlay)
    pid = pids[0] if pids else None
    rss = resident_memory_kib(pid) if pid else None
    state = libvirt_state
    if state != "running" and ledger.phase == "ready":
        state = f"{state} (unexpectedly)"
    return NodeStatus(
        name=node, state=state, ssh_port=record.ssh_port, addresses=dict(record.addresses),
        pid=pid, rss_mib=round(rss / 1024, 1) if rss else None, timings=dict(record.timings),
    )


def _probe_guests(lab: LabNodes, nodes: list[NodeStatus]) -> None:
    """Boot id, uptime and containers of each running node; a node that does not answer keeps none."""
    if not nodes:
        return

    def probe(shell: NodeShell) -> CommandResult:
        return shell.run(PROBE)

    results = lab.on_each([lab.ledger.nodes[n.name] for n in nodes], probe)
    for node in nodes:
        result = results[node.name]
        if isinstance(result, Exception) or not result.ok:
            continue
        lines = result.stdout.splitlines()
        if len(lines) >= 2:
            try:
                uptime = float(lines[1])
            except ValueError:
                continue
            node.boot_id, node.uptime_s = lines[0].strip(), uptime
            node.containers = _containers("\n".join(lines[2:]))


def _containers(body: str) -> list[dict[str, str]]:
    """The engine's /containers/json, reduced to what a status table shows."""
    try:
        listed = json.loads(body)
    except ValueError:
        return []
    return [
        {
            "name": ",".join(name.lstrip("/") for name in item.get("Names", [])),
            "image": item.get("Image", ""),
            "state": item.get("State", ""),
            "status": item.get("Status", ""),
        }
        for item in listed
    ]


def list_labs() -> list[dict[str, Any]]:
    rows = []
    for lab in all_labs():
        if not lab.exists():  # `lab destroy` leaves a directory without a ledger alone
            rows.append({"name": lab.name, "phase": "no ledger (not removed by destroy)", "nodes": 0, "uri": ""})
            continue
        try:
            ledger = lab.load()
        except Exception:
            rows.append({"name": lab.name, "phase": "unreadable ledger", "nodes": 0, "uri": ""})
            continue
        rows.append(
            {"name": ledger.name, "phase": ledger.phase, "nodes": len(ledger.nodes), "uri": ledger.uri}
        )
    return rows
