"""ssh-config, inventories and port allocation, from a ledger written as `lab create` would."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import paramiko
import pytest

from provisioner.errors import LabBusyError, LabExistsError, UserInputError
from provisioner.lab import access
from provisioner.network import PortAllocator, mac_address, port_is_free, ports_in_ledgers
from provisioner.state import LabState, Ledger, NodeRecord


def record(name: str, port: int, links: dict[str, tuple[int, int]] | None = None) -> NodeRecord:
    return NodeRecord(
        name=name, domain=f"lab-demo-{name}", ssh_port=port, mac=mac_address("demo", name),
        overlay="o", seed="s", console_log="c", host_key="k", memory_mib=512, cpus=1,
        image="debian-12", link_ports=links or {},
    )


@pytest.fixture
def lab(private_lab_home: Path) -> LabState:
    state = LabState("demo")
    state.claim()
    ledger = Ledger(name="demo", uri="qemu:///embed?root=x", source="labs/demo.yaml", instance="i1")
    ledger.nodes = {"node1": record("node1", 40001, {"eth1": (41001, 41002)}), "node2": record("node2", 40002)}
    state.save(ledger)
    yield state
    import shutil

    shutil.rmtree(state.dir)


def test_ssh_config_parses_with_paramiko_and_pins_host_keys(lab: LabState) -> None:
    config = paramiko.SSHConfig.from_text(access.ssh_config("demo"))
    for alias in ("node2", "demo-node2"):
        entry = config.lookup(alias)
        assert entry["hostname"] == "127.0.0.1" and entry["port"] == "40002"
        assert entry["user"] == "lab"
        assert entry["identityfile"] == [str(lab.user_key)]
        assert entry["userknownhostsfile"] == str(lab.known_hosts)
        assert entry["stricthostkeychecking"] == "yes"


def test_ssh_argv_is_strict_and_unknown_nodes_are_named(lab: LabState) -> None:
    argv = access.ssh_argv("demo", "node1", ["uname", "-r"], tty=False)
    assert "StrictHostKeyChecking=yes" in argv and argv[-3:] == ["lab@127.0.0.1", "uname", "-r"]
    assert argv[argv.index("-p") + 1] == "40001"
    with pytest.raises(UserInputError, match="no node 'node9'.*node1, node2"):
        access.ssh_argv("demo", "node9", [], tty=False)


def test_inventories(lab: LabState) -> None:
    ansible = json.loads(access.inventory("demo", "ansible"))
    hosts = ansible["all"]["children"]["demo"]["hosts"]
    assert hosts["node1"]["ansible_port"] == 40001
    assert "StrictHostKeyChecking=yes" in hosts["node1"]["ansible_ssh_common_args"]
    assert access.inventory("demo", "testinfra") == "ssh://node1\nssh://node2\n"


def test_ports_recorded_by_any_lab_are_never_handed_out_again(lab: LabState) -> None:
    reserved = ports_in_ledgers(lab.dir.parent)
    assert reserved == {40001, 40002, 41001, 41002}
    allocator = PortAllocator(reserved)
    chosen = {allocator.tcp() for _ in range(5)} | {allocator.udp() for _ in range(5)}
    assert len(chosen) == 10 and not chosen & reserved


def test_port_is_free_sees_a_bound_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)


def test_macs_are_deterministic_and_local() -> None:
    assert mac_address("a", "b") == mac_address("a", "b") != mac_address("a", "c")
    assert mac_address("a", "b").startswith("52:54:00:")


def test_a_second_command_on_a_locked_lab_is_busy(lab: LabState) -> None:
    with lab.locked(), pytest.raises(LabBusyError, match="busy"), LabState("demo").locked():
        pass


def test_claiming_an_existing_lab_fails(lab: LabState) -> None:
    with pytest.raises(LabExistsError, match="already exists"):
        LabState("demo").claim()
