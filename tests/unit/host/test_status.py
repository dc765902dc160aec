"""`lab status`: the ledger's word reconciled with the hypervisor's and the guests'."""

from __future__ import annotations

import math

from provisioner.lab.inspect import status

from .conftest import Host, write_lab


def test_ledger_says_running_hypervisor_says_gone(host: Host) -> None:
    write_lab("st", "ready", ["node1", "node2"])
    host.hypervisor.domains = {"lab-st-node1": "running"}  # node2's domain vanished
    found = status("st", host.seams)
    nodes = {n.name: n for n in found.nodes}
    assert (found.phase, nodes["node1"].state, nodes["node2"].state) == ("ready", "running", "missing (unexpectedly)")
    assert nodes["node1"].boot_id == "boot-id-of-node1" and nodes["node1"].uptime_s == 12.5
    assert nodes["node1"].containers == [{"name": "web", "image": "busybox", "state": "running",
                                          "status": "Up 3 seconds"}]
    assert nodes["node2"].boot_id is None and nodes["node2"].containers == []
    assert host.nodes.connects == ["node1"]  # a node that is not running is not probed


def test_ledger_says_stopped_hypervisor_says_running(host: Host) -> None:
    write_lab("st", "stopped", ["node1", "node2"])
    host.hypervisor.domains = {"lab-st-node1": "running", "lab-st-node2": "stopped"}
    nodes = {n.name: n for n in status("st", host.seams).nodes}
    assert (nodes["node1"].state, nodes["node2"].state) == ("running", "stopped")  # stopped was expected
    assert nodes["node1"].boot_id == "boot-id-of-node1"  # running, whatever the ledger said: probed


def test_a_killed_qemu_is_dead_unexpectedly_and_not_probed(host: Host) -> None:
    write_lab("st", "ready", ["node1"])
    host.hypervisor.domains = {"lab-st-node1": "dead"}
    assert [n.state for n in status("st", host.seams).nodes] == ["dead (unexpectedly)"]
    assert host.nodes.connects == []


def test_a_node_that_does_not_answer_keeps_its_state_without_guest_facts(host: Host) -> None:
    write_lab("st", "ready", ["node1", "node2"])
    host.hypervisor.domains = {"lab-st-node1": "running", "lab-st-node2": "running"}
    host.nodes.unreachable["node2"] = math.inf
    nodes = {n.name: n for n in status("st", host.seams).nodes}
    assert nodes["node2"].state == "running" and nodes["node2"].boot_id is None
    assert nodes["node1"].boot_id == "boot-id-of-node1"


def test_a_busy_lab_shows_busy_without_asking_the_hypervisor(host: Host) -> None:
    state = write_lab("st", "creating", ["node1"])
    with state.locked():
        found = status("st", host.seams)
    assert [n.state for n in found.nodes] == ["busy"]
    assert host.hypervisor.opened == [] and host.nodes.connects == []


def test_status_json_keeps_its_fields(host: Host) -> None:
    write_lab("st", "ready", ["node1"])
    host.hypervisor.domains = {"lab-st-node1": "running"}
    data = status("st", host.seams).to_dict()
    assert set(data) == {"name", "phase", "uri", "accel", "nodes", "links", "timings"}
    assert set(data["nodes"][0]) == {"name", "state", "ssh_port", "addresses", "pid", "rss_mib", "boot_id",
                                     "uptime_s", "timings", "containers"}
