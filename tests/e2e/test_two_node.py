"""`lab create two-node`: two guests joined by a UDP link, reached the ways users reach hosts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import testinfra

from provisioner.network import port_is_free

from .conftest import Lab, ledger, qemu_processes_under

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ssh_config(lab: Lab, two_node: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ssh") / "config"
    path.write_text(lab("ssh-config", two_node).stdout)
    return path


def on(lab: Lab, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return lab("exec", "two-node", node, "--", command, check=check)


def test_node1_pings_node2_by_name_over_the_link(lab: Lab, two_node: str) -> None:
    out = on(lab, "node1", "ping -c 3 -W 2 node2").stdout
    assert "10.10.0.2" in out and " 0% packet loss" in out
    assert "10.10.0.1" in on(lab, "node2", "ping -c 1 -W 2 node1").stdout


def test_each_node_has_its_own_boot_id(lab: Lab, two_node: str) -> None:
    ids = {on(lab, n, "cat /proc/sys/kernel/random/boot_id").stdout.split()[-1] for n in ("node1", "node2")}
    assert len(ids) == 2


def test_a_process_and_a_file_on_node1_are_invisible_from_node2(lab: Lab, two_node: str) -> None:
    on(lab, "node1", "nohup sleep 4321 >/dev/null 2>&1 & touch /tmp/only-on-node1")
    assert "sleep 4321" in on(lab, "node1", "ps -eo args").stdout
    assert "sleep 4321" not in on(lab, "node2", "ps -eo args").stdout
    assert on(lab, "node2", "test -e /tmp/only-on-node1", check=False).returncode != 0


def test_openssh_uses_the_ssh_config_as_is(lab: Lab, two_node: str, ssh_config: Path) -> None:
    for host in ("node1", "two-node-node2"):
        done = subprocess.run(["ssh", "-F", str(ssh_config), host, "hostname"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    # Piped, as the README shows: OpenSSH closes inherited descriptors, so <(...) cannot work.
    piped = subprocess.run(
        f"{lab_command()} ssh-config two-node | ssh -F /dev/stdin node1 true", shell=True, timeout=60,
    )
    assert piped.returncode == 0


def lab_command() -> str:
    import sys

    return f"{sys.executable} -m provisioner.cli"


def test_testinfra_connects_with_the_ssh_config(two_node: str, ssh_config: Path) -> None:
    for name in ("node1", "node2"):
        host = testinfra.get_host(f"ssh://{name}", ssh_config=str(ssh_config))
        assert host.check_output("hostname") == name
        assert host.interface("eth1").exists


def test_fabric_connects_with_the_ssh_config(two_node: str, ssh_config: Path) -> None:
    import fabric
    import paramiko

    config = fabric.Config(runtime_ssh_path=str(ssh_config))
    connection = fabric.Connection("node2", config=config)
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    connection.client.load_host_keys(paramiko.SSHConfig.from_path(str(ssh_config)).lookup("node2")["userknownhostsfile"])
    try:
        assert connection.run("hostname", hide=True, in_stream=False).stdout.strip() == "node2"
    finally:
        connection.close()


def test_exec_all_reports_every_node_and_fails_if_one_fails(lab: Lab, two_node: str) -> None:
    done = lab("exec", two_node, "--all", "--json", "--", "hostname")
    results = {r["node"]: r for r in json.loads(done.stdout)}
    assert {n: r["stdout"].strip() for n, r in results.items()} == {"node1": "node1", "node2": "node2"}
    failing = lab("exec", two_node, "--all", "--json", "--", "test $(hostname) = node1", check=False)
    assert failing.returncode == 1
    codes = {r["node"]: r["exit_code"] for r in json.loads(failing.stdout)}
    assert codes == {"node1": 0, "node2": 1}


def test_a_killed_node_shows_in_status_and_start_heals_it(
    lab: Lab, two_node: str, private_lab_home: Path
) -> None:
    before = json.loads(lab("status", two_node, "--json").stdout)
    old_boot = {n["name"]: n["boot_id"] for n in before["nodes"]}
    pid = ledger(private_lab_home, two_node)["nodes"]["node1"]["pid"]
    assert pid in qemu_processes_under(private_lab_home / "labs" / two_node / "nodes" / "node1")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    status = json.loads(lab("status", two_node, "--json").stdout)
    states = {n["name"]: n["state"] for n in status["nodes"]}
    assert states["node2"] == "running"
    assert states["node1"] != "running"
    started = lab("start", two_node)
    assert "node1" in started.stdout and "node2" not in started.stdout.split("started:")[1]
    after = {n["name"]: n for n in json.loads(lab("status", two_node, "--json").stdout)["nodes"]}
    assert after["node1"]["state"] == "running" and after["node1"]["boot_id"] != old_boot["node1"]
    assert after["node2"]["boot_id"] == old_boot["node2"]
    assert " 0% packet loss" in on(lab, "node1", "ping -c 2 -W 2 node2").stdout


def test_destroy_leaves_nothing(lab: Lab, two_node: str, private_lab_home: Path) -> None:
    record = ledger(private_lab_home, two_node)
    ports = [n["ssh_port"] for n in record["nodes"].values()]
    udp = [p for n in record["nodes"].values() for pair in n["link_ports"].values() for p in pair]
    state = private_lab_home / "labs" / two_node
    lab("destroy", two_node)
    assert not state.exists()
    assert qemu_processes_under(state) == []
    assert all(port_is_free(port) for port in ports)
    import socket

    assert all(port_is_free(port, socket.SOCK_DGRAM) for port in udp)
