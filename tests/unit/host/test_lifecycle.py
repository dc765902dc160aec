"""`lab start` heals a node killed behind lab's back; `lab stop` stops every node."""

from __future__ import annotations

import pytest

from provisioner import engineapi
from provisioner.errors import LabBusyError
from provisioner.lab import lifecycle
from provisioner.lab.create import CreateOptions, create
from provisioner.lab.inspect import status
from provisioner.progress import SilentReporter
from provisioner.state import LabState

from .conftest import Host


@pytest.fixture
def lab(host: Host) -> str:
    create(host.labfile("heal"), CreateOptions(connect="fake:///lab", parallel=2), SilentReporter(), host.seams)
    host.hypervisor.calls.clear()
    host.nodes.commands.clear()
    host.nodes.connects.clear()
    return "heal"


def test_start_heals_only_the_killed_node(host: Host, lab: str) -> None:
    before = LabState(lab).load().nodes["node2"].timings
    host.hypervisor.kill("lab-heal-node1")
    assert {n.name: n.state for n in status(lab, host.seams).nodes} == {
        "node1": "dead (unexpectedly)", "node2": "running",
    }
    host.nodes.connects.clear()
    host.nodes.commands.clear()

    started = lifecycle.start(lab, SilentReporter(), host.seams)

    assert started == ["node1"]
    assert [name for op, name in host.hypervisor.calls if op == "start"] == ["lab-heal-node1"]
    assert host.hypervisor.domains == {"lab-heal-node1": "running", "lab-heal-node2": "running"}
    assert host.nodes.connects == ["node1"]  # node2 is left alone
    assert host.nodes.ran("node1", "sudo -n sh /tmp/lab-agent.")  # the agent is (re)installed
    assert not host.nodes.ran("node1", f"channel {engineapi.REQUEST_BRIDGE}")  # lab-file containers: on create only
    ledger = LabState(lab).load()
    assert ledger.phase == "ready" and ledger.nodes["node2"].timings == before
    assert "ready" in ledger.nodes["node1"].timings
    assert host.nodes.open_shells() == [] and host.hypervisor.open_connections == 0


def test_start_with_everything_running_starts_nothing(host: Host, lab: str) -> None:
    assert lifecycle.start(lab, SilentReporter(), host.seams) == []
    assert not [call for call in host.hypervisor.calls if call[0] == "start"] and host.nodes.connects == []


def test_a_missing_domain_is_not_running_and_start_says_so(host: Host, lab: str) -> None:
    host.hypervisor.domains.pop("lab-heal-node2")  # undefined behind lab's back
    with pytest.raises(Exception, match="domain lab-heal-node2 is not defined"):
        lifecycle.start(lab, SilentReporter(), host.seams)


def test_stop_stops_every_node_and_forgets_their_processes(host: Host, lab: str) -> None:
    lifecycle.stop(lab, SilentReporter(), host.seams)
    assert set(host.hypervisor.domains.values()) == {"stopped"}
    ledger = LabState(lab).load()
    assert ledger.phase == "stopped" and all(r.pid is None and r.process is None for r in ledger.nodes.values())


def test_start_and_stop_hold_the_labs_lock(host: Host, lab: str) -> None:
    with LabState(lab).locked():
        with pytest.raises(LabBusyError):
            lifecycle.stop(lab, SilentReporter(), host.seams)
        with pytest.raises(LabBusyError):
            lifecycle.start(lab, SilentReporter(), host.seams)
    assert host.hypervisor.opened == ["fake:///lab"]  # only create's: busy commands open nothing
