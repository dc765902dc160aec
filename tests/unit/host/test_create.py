"""`lab create` against the fakes: a whole lab comes up, and a failure at any phase leaves nothing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import BootError, HypervisorError, RemoteError
from provisioner.lab.create import CreateOptions, create
from provisioner.lab.inspect import list_labs
from provisioner.lab.teardown import DESTROYED, destroy
from provisioner.progress import SilentReporter
from provisioner.remote.seam import CommandResult
from provisioner.state import LabState, Ledger

from .conftest import Host
from .fakes import CONTAINER_ID, EngineCall

OPTIONS = CreateOptions(connect="fake:///lab", timeout=0.2, parallel=2)


def make(host: Host, name: str = "rb", options: CreateOptions = OPTIONS) -> Ledger:
    return create(host.labfile(name), options, SilentReporter(), host.seams)


class Snapshot:
    """What existed when the failure struck: the ledger on disk and the hypervisor's domains."""

    def __init__(self, host: Host, name: str) -> None:
        self.host, self.name = host, name
        self.ledger: Ledger | None = None
        self.domains: dict[str, str] = {}
        self.files: list[Path] = []

    def __call__(self) -> None:
        state = LabState(self.name)
        self.ledger = state.load()
        self.domains = dict(self.host.hypervisor.domains)
        self.files = [path for path in state.layout(self.ledger).files if path.exists()]

    def failing(self, result: CommandResult) -> Any:
        """An answer that takes the snapshot, then fails the command."""

        def answer(node: str, command: str) -> CommandResult:
            self()
            return result

        return answer

    def refusing(self, status: int, message: str) -> Any:
        """An engine reply that takes the snapshot, then refuses the request."""

        def answer(call: EngineCall) -> tuple[int, Any]:
            self()
            return status, {"message": message}

        return answer


def test_a_lab_comes_up_through_the_seams(host: Host) -> None:
    ledger = make(host)
    assert ledger.phase == "ready" and LabState("rb").load().phase == "ready"
    assert host.hypervisor.domains == {"lab-rb-node1": "running", "lab-rb-node2": "running"}
    assert host.built == ["debian-12"]
    for node in ("node1", "node2"):
        assert host.nodes.ran(node, "sudo -n sh /tmp/lab-agent.")  # the agent was installed
        assert set(ledger.nodes[node].timings) >= {"vm_started", "ssh", "cloud_init", "agent", "ready"}
    # the lab file's container, created through the engine's API and started
    create_call, start_call = host.nodes.engine.calls_for("node1")
    assert (create_call.method, create_call.path, create_call.query) == ("POST", "/containers/create", {"name": "web"})
    assert create_call.body == {
        "Image": "busybox", "Cmd": ["httpd", "-f", "-p", "80"], "Env": [], "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}, "AutoRemove": False},
    }
    assert (start_call.method, start_call.path) == ("POST", f"/containers/{CONTAINER_ID}/start")
    assert host.nodes.engine.calls_for("node2") == []
    # one connection per node for the whole command, and every one closed at its end
    assert sorted(host.nodes.connects) == ["node1", "node2"]
    assert host.nodes.open_shells() == [] and host.hypervisor.open_connections == 0


def assert_nothing_left(host: Host, snapshot: Snapshot) -> None:
    """Everything the ledger recorded at the failure is gone, with the ledger itself."""
    assert snapshot.ledger is not None, "the failure was never reached"
    recorded = {record.domain for record in snapshot.ledger.nodes.values()}
    assert set(snapshot.domains) <= recorded, "a domain existed that the ledger did not record"
    assert host.hypervisor.domains == {}
    assert {name for op, name in host.hypervisor.calls if op == "remove"} == recorded
    assert snapshot.files and not any(path.exists() for path in snapshot.files)
    assert not LabState(snapshot.name).dir.exists()
    assert [row["name"] for row in list_labs()] == []
    assert host.nodes.open_shells() == [] and host.hypervisor.open_connections == 0


def test_failure_while_defining_rolls_back(host: Host) -> None:
    snapshot = Snapshot(host, "rb")
    host.hypervisor.fail_on("define", "lab-rb-node2", then=snapshot)
    with pytest.raises(HypervisorError, match="injected: define failed"):
        make(host)
    assert snapshot.domains == {"lab-rb-node1": "stopped"}
    assert_nothing_left(host, snapshot)


def test_failure_while_starting_rolls_back(host: Host) -> None:
    snapshot = Snapshot(host, "rb")
    host.hypervisor.fail_on("start", "lab-rb-node1", then=snapshot)
    with pytest.raises(HypervisorError, match="injected: start failed"):
        make(host)
    assert set(snapshot.domains) == {"lab-rb-node1", "lab-rb-node2"}
    assert_nothing_left(host, snapshot)


def test_failure_while_waiting_for_ssh_rolls_back(host: Host) -> None:
    snapshot = Snapshot(host, "rb")
    host.nodes.unreachable["node2"] = math.inf
    host.hypervisor.on("remove", lambda: snapshot.ledger or snapshot())  # the rollback's first step
    with pytest.raises(BootError, match=r"node node2: SSH not ready after 0 s \(ConnectionRefusedError: .*refused\)"):
        make(host)
    assert snapshot.domains == {"lab-rb-node1": "running", "lab-rb-node2": "running"}
    assert_nothing_left(host, snapshot)


def test_failure_installing_the_agent_rolls_back(host: Host) -> None:
    snapshot = Snapshot(host, "rb")
    broken = CommandResult(1, "", "dpkg: warning\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    host.nodes.answer("sudo -n sh /tmp/lab-agent.", snapshot.failing(broken), node="node2")
    with pytest.raises(RemoteError, match=r"^node node2: installing the guest agent failed: E: Sub-process"):
        make(host)
    assert_nothing_left(host, snapshot)


def test_failure_starting_containers_rolls_back(host: Host) -> None:
    snapshot = Snapshot(host, "rb")
    host.nodes.engine.reply("POST", "/containers/create", snapshot.refusing(404, "No such image: busybox"))
    with pytest.raises(BootError, match=r"^node node1: container web did not start: No such image: busybox$"):
        make(host)
    assert snapshot.domains == {"lab-rb-node1": "running", "lab-rb-node2": "running"}
    assert_nothing_left(host, snapshot)


def test_ctrl_c_mid_boot_rolls_back(host: Host) -> None:
    snapshot = Snapshot(host, "rb")
    host.hypervisor.fail_on("start", "lab-rb-node2", error=KeyboardInterrupt(), then=snapshot)
    with pytest.raises(KeyboardInterrupt):
        make(host)
    assert_nothing_left(host, snapshot)


def test_a_rollback_that_cannot_remove_a_domain_keeps_the_ledger_for_destroy(host: Host) -> None:
    host.nodes.engine.reply("POST", "/containers/create", (404, {"message": "No such image: busybox"}))
    host.hypervisor.fail_on("remove", "lab-rb-node2")
    with pytest.raises(BootError, match="container web did not start"):
        make(host)
    ledger = LabState("rb").load()
    assert ledger.phase == "failed" and set(ledger.nodes) == {"node1", "node2"}
    assert host.hypervisor.domains == {"lab-rb-node2": "running"}
    host.hypervisor.triggers.clear()  # libvirt recovers; `lab destroy` finishes the job
    result = destroy("rb", host.seams)
    assert (result.outcome, result.problems) == (DESTROYED, [])
    assert host.hypervisor.domains == {} and not LabState("rb").dir.exists()
