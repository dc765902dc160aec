"""LabSession holds the lab's lock, as it says; LabNodes (reaching the nodes) takes none."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import LabBusyError, LabError
from provisioner.lab import access, engine
from provisioner.lab.session import LabNodes, LabSession, locked_session, opened, reaching
from provisioner.remote.seam import CommandResult
from provisioner.state import LabState

from .conftest import Host, write_lab


def test_a_session_cannot_be_had_without_the_lock(host: Host) -> None:
    state = write_lab("lk", "ready", ["node1"])
    with pytest.raises(LabError, match="opened without its lock"):
        LabSession(state, state.load(), host.seams)
    with locked_session(state, host.seams) as session:
        assert state.lock_held and session.ledger.name == "lk"
        with pytest.raises(LabBusyError), opened("lk", host.seams):
            pass
    assert not state.lock_held


def test_reaching_the_nodes_takes_no_lock(host: Host) -> None:
    state = write_lab("lk", "ready", ["node1", "node2"])
    with state.locked():  # another command (a create, a start) holds the lock
        results = access.execute("lk", None, "hostname", host.seams)
        with reaching("lk", host.seams) as lab:
            assert isinstance(lab, LabNodes) and not isinstance(lab, LabSession)
            assert not hasattr(lab, "save") and not hasattr(lab, "hypervisor")
    assert [(r.node, r.exit_code) for r in results] == [("node1", 0), ("node2", 0)]
    assert host.hypervisor.opened == []


def test_one_connection_per_node_for_a_whole_command(host: Host) -> None:
    write_lab("lk", "ready", ["node1"])
    with reaching("lk", host.seams) as lab:
        record = lab.ledger.nodes["node1"]
        first = lab.shell(record)
        assert lab.shell(record) is first
        first.run("true")
        lab.on_each([record], lambda shell: shell.run("uname -r"))
    assert host.nodes.connects == ["node1"] and host.nodes.open_shells() == []
    assert host.nodes.commands["node1"] == ["true", "uname -r"]


def test_exec_reports_each_node_and_what_kept_one_from_running(host: Host) -> None:
    write_lab("lk", "ready", ["node1", "node2"])
    host.nodes.answer("hostname", CommandResult(0, "node1\n"), node="node1")
    host.nodes.unreachable["node2"] = 1
    results = access.execute("lk", None, "hostname", host.seams)
    assert [(r.node, r.exit_code, r.stdout, r.error) for r in results] == [
        ("node1", 0, "node1\n", None),
        ("node2", None, "", "ConnectionRefusedError: [Errno 111] Connection refused"),
    ]


def test_deploy_agent_deploys_to_every_node_and_raises_the_first_failure(host: Host) -> None:
    write_lab("lk", "ready", ["node1", "node2"])
    assert engine.deploy_agent("lk", host.seams) == ["node1", "node2"]
    host.nodes.answer("sudo -n sh ", CommandResult(1, "", "E: no space\n"), node="node2")
    with pytest.raises(LabError, match="^node node2: installing the guest agent failed: E: no space$"):
        engine.deploy_agent("lk", host.seams)


def test_push_uploads_into_a_fresh_directory_and_loads_from_it(host: Host, tmp_path: Path) -> None:
    write_lab("lk", "ready", ["node1"])
    archive = tmp_path / "image.tar"
    archive.write_bytes(b"tarball")
    host.nodes.answer("labctl load", CommandResult(0, "Loaded image: pushed:1\n"))
    assert engine.push_image("lk", "node1", archive, host.seams) == "Loaded image: pushed:1"
    ((node, remote), data), = host.nodes.files.items()
    assert node == "node1" and remote.startswith("/tmp/lab-push.") and data == b"tarball"
    assert host.nodes.ran("node1", f"labctl load -i {remote}; rc=$?; rm -rf ")
    assert LabState("lk").exists()
