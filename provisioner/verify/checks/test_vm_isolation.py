"""Claim 1: a VM virtualises hardware and runs its own kernel; nodes share only declared links."""

from __future__ import annotations

import ipaddress
import itertools
import uuid

import pytest
import testinfra.host

from ...state import Ledger

Hosts = dict[str, testinfra.host.Host]
MANAGEMENT = ipaddress.IPv4Network("10.0.2.0/24")
ENGINE_BRIDGE = ipaddress.IPv4Network("172.31.0.0/24")


def two_or_more(nodes: Hosts) -> list[str]:
    if len(nodes) < 2:
        pytest.skip("needs two nodes")
    return list(nodes)


def test_each_node_runs_its_own_kernel(nodes: Hosts) -> None:
    boot_ids = {name: host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
                for name, host in nodes.items()}
    assert len(set(boot_ids.values())) == len(boot_ids), f"nodes share a boot_id (one kernel): {boot_ids}"


def test_no_node_sees_another_nodes_processes(nodes: Hosts) -> None:
    first, *others = two_or_more(nodes)
    seconds = 40000 + uuid.uuid4().int % 9999
    pid = nodes[first].check_output(f"nohup sleep {seconds} >/dev/null 2>&1 & echo $!")
    try:
        assert f"sleep {seconds}" in nodes[first].check_output("ps -eo args"), "marker process did not start"
        for other in others:
            assert f"sleep {seconds}" not in nodes[other].check_output("ps -eo args"), (
                f"{other} sees a process that runs on {first}"
            )
    finally:
        nodes[first].run(f"kill {pid}")


def test_no_node_sees_another_nodes_files(nodes: Hosts) -> None:
    first, *others = two_or_more(nodes)
    path = f"/tmp/lab-verify-{uuid.uuid4().hex}"
    nodes[first].run(f"touch {path}")
    try:
        for other in others:
            assert not nodes[other].file(path).exists, f"{other} sees {path}, written on {first}"
    finally:
        nodes[first].run(f"rm -f {path}")


def interfaces(host: testinfra.host.Host) -> set[str]:
    """The node's network devices: those backed by a (virtual) NIC, not bridges or veths."""
    return set(host.check_output("cd /sys/class/net && for d in *; do [ ! -e $d/device ] || echo $d; done").split())


def test_nodes_have_only_their_declared_links(lab_ledger: Ledger, nodes: Hosts) -> None:
    problems = []
    for name, host in nodes.items():
        declared = {"eth0", *lab_ledger.nodes[name].addresses}
        extra = interfaces(host) - declared
        if extra:
            problems.append(f"{name} has undeclared interfaces {sorted(extra)}")
    assert not problems, "; ".join(problems)


def addresses(host: testinfra.host.Host) -> list[ipaddress.IPv4Interface]:
    found = []
    for line in host.check_output("ip -o -4 addr show").splitlines():
        interface = ipaddress.IPv4Interface(line.split()[3])
        if not interface.ip.is_loopback and interface.ip not in MANAGEMENT and interface.ip not in ENGINE_BRIDGE:
            found.append(interface)
    return found


def test_nodes_reach_each_other_only_over_declared_links(lab_ledger: Ledger, nodes: Hosts) -> None:
    names = two_or_more(nodes)
    problems = []
    for source, target in itertools.permutations(names, 2):
        shared = {ipaddress.IPv4Interface(a).network for a in lab_ledger.nodes[source].addresses.values()} & {
            ipaddress.IPv4Interface(a).network for a in lab_ledger.nodes[target].addresses.values()
        }
        for address in addresses(nodes[target]):
            reached = nodes[source].run(f"ping -c 1 -W 2 {address.ip}").rc == 0
            if reached and address.network not in shared:
                problems.append(f"{source} reaches {target} at {address.ip}, over no declared link")
            if not reached and address.network in shared:
                problems.append(f"{source} cannot reach {target} at {address.ip} over their declared link")
    assert not problems, "; ".join(problems)


def test_guests_cannot_reach_beyond_their_forwards(lab_ledger: Ledger, nodes: Hosts) -> None:
    """10.0.2.2 is QEMU's alias for the host's loopback, where each node's SSH forward listens.

    Without restrict=on a guest could connect to those listeners (or anything else on the
    host); with it, nothing leaves the guest but replies on its own forwards.
    """
    listening = [record.ssh_port for record in lab_ledger.nodes.values()]
    for name, host in nodes.items():
        for port in listening:
            tcp = host.run(f"timeout 4 bash -c '</dev/tcp/10.0.2.2/{port}'")
            assert tcp.rc != 0, f"{name} reached the host's 127.0.0.1:{port} through user networking"
