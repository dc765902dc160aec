"""`lab create single`: one real guest, SSH with a pinned host key, and a clean destroy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from provisioner.network import port_is_free

from .conftest import Lab, created, ledger, qemu_processes_under

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def single(lab: Lab, built_image: None) -> Iterator[str]:
    yield from created(lab, "single")


def node(home: Path) -> dict:
    return ledger(home, "single")["nodes"]["node1"]


def client_for(home: Path, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1", port=node(home)["ssh_port"], username="lab",
        key_filename=str(home / "labs/single/id_ed25519"), look_for_keys=False, allow_agent=False,
        timeout=20,
    )
    return client


def test_status_shows_a_running_node_with_timings(lab: Lab, single: str) -> None:
    import json

    status = json.loads(lab("status", single, "--json").stdout)
    assert status["phase"] == "ready"
    (node1,) = status["nodes"]
    assert node1["state"] == "running"
    assert len(node1["boot_id"]) == 36
    assert 0 < node1["timings"]["ssh"] <= node1["timings"]["ready"]
    assert node1["rss_mib"] > 50


def test_ssh_presents_the_pinned_host_key_and_the_hostname(single: str, private_lab_home: Path) -> None:
    client = client_for(private_lab_home, private_lab_home / "labs/single/known_hosts")
    try:
        presented = client.get_transport().get_remote_server_key()  # type: ignore[union-attr]
        pinned = (private_lab_home / "labs/single/nodes/node1/ssh_host_ed25519_key.pub").read_text().split()
        assert presented.get_name() == pinned[0] == "ssh-ed25519"
        assert presented.get_base64() == pinned[1]
        _, stdout, _ = client.exec_command("hostname")
        assert stdout.read().decode().strip() == "node1"
    finally:
        client.close()


def test_a_wrong_pinned_key_is_refused(single: str, private_lab_home: Path, tmp_path: Path) -> None:
    port = node(private_lab_home)["ssh_port"]
    impostor = paramiko.Ed25519Key.from_private_key_file(str(private_lab_home / "labs/single/id_ed25519"))
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} ssh-ed25519 {impostor.get_base64()}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        client_for(private_lab_home, wrong)
    openssh = subprocess.run(
        ["ssh", "-p", str(port), "-i", str(private_lab_home / "labs/single/id_ed25519"),
         "-o", f"UserKnownHostsFile={wrong}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
         "lab@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=60,
    )
    assert openssh.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in openssh.stderr


def test_lab_ssh_runs_a_command_and_gives_an_interactive_tty(lab: Lab, single: str) -> None:
    assert lab("ssh", single, "node1", "--", "cat", "/etc/hostname").stdout.strip() == "node1"
    interactive = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m provisioner.cli ssh {single} node1", "/dev/null"],
        input="tty; exit\n", capture_output=True, text=True, timeout=120,
    )
    assert "/dev/pts/" in interactive.stdout


def test_the_guest_booted_the_trimmed_way(lab: Lab, single: str, private_lab_home: Path) -> None:
    """Guards the fast-boot path: PVH kernel, tiny initrd, networkd, one cloud-init service."""
    (pid,) = qemu_processes_under(private_lab_home / "labs/single")
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    kernel = argv[argv.index("-kernel") + 1]
    assert kernel.endswith("/vmlinux")
    assert Path(kernel).read_bytes()[:4] == b"\x7fELF"  # uncompressed ELF: PVH entry, no decompressor
    assert "-nodefaults" in argv
    assert any("restrict=on" in arg for arg in argv)
    assert any('"free-page-reporting":true' in arg for arg in argv)
    checks = lab("ssh", single, "node1", "--",
                 "cat /sys/module/page_reporting/parameters/page_reporting_order;"
                 "test -e /sbin/ifup || echo no-ifupdown;"
                 "systemctl is-enabled cloud-init-local.service cloud-config.service;"
                 "systemctl is-active systemd-networkd;"
                 "cloud-init status", check=False).stdout.split()
    assert checks == ["3", "no-ifupdown", "masked", "masked", "active", "status:", "done"]


def test_destroy_leaves_nothing(lab: Lab, single: str, private_lab_home: Path) -> None:
    port = node(private_lab_home)["ssh_port"]
    state = private_lab_home / "labs" / single
    assert qemu_processes_under(state)
    lab("destroy", single)
    assert not state.exists()
    assert qemu_processes_under(state) == []
    assert port_is_free(port)  # nothing listens on the forwarded port any more
    assert "nothing to destroy" in lab("destroy", single).stdout
