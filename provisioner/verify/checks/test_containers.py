"""Claims 2 and 3: a container is an isolated process on the node's kernel, with its own view."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

import pytest
import testinfra.host

from ...state import Ledger
from ..plugin import Probes

Hosts = dict[str, testinfra.host.Host]
ContainerHost = Callable[[str, str], testinfra.host.Host]
ENGINE_BRIDGE = ipaddress.IPv4Network("172.31.0.0/24")


def inspect(probes: Probes, name: str) -> dict:  # type: ignore[type-arg]
    data: list[dict] = json.loads(probes.run("inspect", name).stdout)  # type: ignore[type-arg]
    return data[0]


def namespace(host: testinfra.host.Host, kind: str) -> str:
    return str(host.check_output(f"readlink /proc/self/ns/{kind}"))


def test_shared_kernel_container_runs_on_the_nodes_kernel(probes: Probes, container_host: ContainerHost) -> None:
    inside = container_host(probes.node, probes.first).check_output("uname -r")
    assert inside == probes.host.check_output("uname -r"), "the container reports another kernel release"


def test_shared_kernel_container_pid1_is_an_ordinary_node_process(probes: Probes) -> None:
    pid = inspect(probes, probes.first)["State"]["Pid"]
    assert pid > 1, f"the container's init is PID {pid} on the node"
    cmdline = probes.host.file(f"/proc/{pid}/cmdline").content_string.replace("\0", " ").strip()
    assert cmdline == "sleep 3600", f"node PID {pid} is {cmdline!r}, not the container's PID 1"


def test_pid_namespace_shows_only_the_containers_processes(probes: Probes, container_host: ContainerHost) -> None:
    listing = container_host(probes.node, probes.first).check_output("ps -o pid,comm")
    rows = [line.split(None, 1) for line in listing.splitlines()[1:]]
    commands = {command.strip() for _, command in rows}
    assert ["1", "sleep"] in [[pid, command.strip()] for pid, command in rows], f"PID 1 is not sleep: {rows}"
    foreign = commands - {"sleep", "ps", "sh"}
    assert not foreign, f"the container sees processes outside itself: {sorted(foreign)}"


def test_uts_namespace_gives_its_own_hostname(probes: Probes, container_host: ContainerHost) -> None:
    inside = container_host(probes.node, probes.first).check_output("hostname")
    assert inside != probes.host.check_output("hostname"), "the container has the node's hostname"


@pytest.mark.parametrize("kind", ["mnt", "ipc", "net", "cgroup", "uts", "pid"])
def test_namespace_is_the_containers_own(probes: Probes, container_host: ContainerHost, kind: str) -> None:
    inside = namespace(container_host(probes.node, probes.first), kind)
    assert inside != probes.host.check_output(f"sudo readlink /proc/1/ns/{kind}"), (
        f"the container shares the node's {kind} namespace"
    )


def test_mnt_namespace_has_its_own_root(probes: Probes, container_host: ContainerHost) -> None:
    root = container_host(probes.node, probes.first).check_output("awk '$2 == \"/\" {print $3}' /proc/mounts")
    assert root.splitlines()[0] == "overlay", f"the container's / is {root!r}, not its overlay"


def test_cgroup_namespace_puts_the_container_at_its_own_root(probes: Probes, container_host: ContainerHost) -> None:
    assert container_host(probes.node, probes.first).check_output("cat /proc/self/cgroup") == "0::/"


def test_net_namespace_has_its_own_address_on_the_bridge(probes: Probes, container_host: ContainerHost) -> None:
    output = container_host(probes.node, probes.first).check_output("ip -o -4 addr show")
    addresses = [ipaddress.IPv4Interface(line.split()[3]) for line in output.splitlines()]
    on_bridge = [a for a in addresses if a.ip in ENGINE_BRIDGE]
    assert on_bridge, f"no address on the engine bridge {ENGINE_BRIDGE}: {addresses}"
    assert not any(a.ip in ipaddress.IPv4Network("10.0.2.0/24") for a in addresses), "the node's NIC is visible"


def test_net_namespace_reaches_a_sibling_by_name(probes: Probes, container_host: ContainerHost) -> None:
    ping = container_host(probes.node, probes.first).run(f"ping -c 1 -W 2 {probes.second}")
    assert ping.rc == 0, f"{probes.first} cannot reach {probes.second} by name: {ping.stdout}{ping.stderr}"


def link_address_towards(lab_ledger: Ledger, node: str, other: str) -> str | None:
    """node's address on a link it shares with other, if they share one."""
    theirs = {ipaddress.IPv4Interface(a).network for a in lab_ledger.nodes[other].addresses.values()}
    for address in lab_ledger.nodes[node].addresses.values():
        if ipaddress.IPv4Interface(address).network in theirs:
            return str(ipaddress.IPv4Interface(address).ip)
    return None


def test_net_namespace_is_unreachable_from_other_nodes(lab_ledger: Ledger, nodes: Hosts, probes: Probes) -> None:
    """Another node that routes straight to a container's address, over their link, gets nothing.

    Every node's bridge has the same subnet, so a plain ping from another node would only
    test that node's own bridge; a host route through the link sends it to the right node.
    """
    address = inspect(probes, probes.first)["NetworkSettings"]["IPAddress"]
    peers = {name: link_address_towards(lab_ledger, probes.node, name) for name in nodes if name != probes.node}
    peers = {name: via for name, via in peers.items() if via}
    if not peers:
        pytest.skip("needs another node on a link")
    for other, via in peers.items():
        route = f"{address}/32 via {via}"
        nodes[other].run_expect([0], f"sudo ip route replace {route}")
        try:
            ping = nodes[other].run(f"ping -c 1 -W 2 {address}")
        finally:
            nodes[other].run(f"sudo ip route del {route}")
        assert ping.rc != 0, f"{other} reaches container {address} through {probes.node} ({via})"


def test_net_namespace_published_ports_are_reachable_from_other_nodes(lab_ledger: Ledger, nodes: Hosts) -> None:
    published = [
        (node, spec.publish[0].split(":")[-2])
        for node, record in lab_ledger.nodes.items() for spec in record.containers.values() if spec.publish
    ]
    others = {node: [n for n in nodes if n != node] for node, _ in published}
    if not published or not any(others.values()):
        pytest.skip("no published port to reach from another node")
    for node, port in published:
        for other in others[node]:
            done = nodes[other].run(f"timeout 5 bash -c '</dev/tcp/{node}/{port}'")
            assert done.rc == 0, f"{other} cannot reach {node}:{port}, a published port"
