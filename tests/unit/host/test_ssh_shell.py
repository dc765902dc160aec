"""The production node shell (fabric/paramiko) against a real SSH server in this process."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.errors import HostKeyMismatch, NodeUnreachable, RemoteError
from provisioner.keys import generate_ed25519, read_public, write_key_pair, write_known_hosts
from provisioner.remote import ssh
from provisioner.remote.seam import Endpoint

from .sshd import Sshd, sshd


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Sshd]:
    with sshd(tmp_path) as running:
        yield running


def test_run_gives_exit_code_and_both_streams(server: Sshd) -> None:
    shell = ssh.connect(server.endpoint)
    try:
        result = shell.run("echo out; echo err >&2; exit 3")
        assert (result.exit_code, result.stdout, result.stderr, result.ok) == (3, "out\n", "err\n", False)
        assert shell.run("true").ok
    finally:
        shell.close()
    assert len(server.transports) == 1  # one connection for every call


def test_put_writes_bytes_and_copies_host_files(server: Sshd, tmp_path: Path) -> None:
    source = tmp_path / "script.py"
    source.write_bytes(b"print('measured')\n")
    shell = ssh.connect(server.endpoint)
    try:
        shell.put(b"\x00binary\xff", str(tmp_path / "uploaded.bin"))
        shell.put(source, str(tmp_path / "copied.py"))
        with pytest.raises(RemoteError, match="node node1: copying to /nonexistent/x failed: "):
            shell.put(b"x", "/nonexistent/x")
    finally:
        shell.close()
    assert (tmp_path / "uploaded.bin").read_bytes() == b"\x00binary\xff"
    assert (tmp_path / "copied.py").read_bytes() == source.read_bytes()


def test_a_command_that_runs_too_long_is_a_remote_error(server: Sshd) -> None:
    shell = ssh.connect(server.endpoint)
    try:
        with pytest.raises(RemoteError, match="node node1: a command did not finish in 1 s"):
            shell.run("sleep 5", timeout=1)
    finally:
        shell.close()


def test_a_channel_carries_a_commands_stdio(server: Sshd) -> None:
    shell = ssh.connect(server.endpoint)
    try:
        channel = shell.channel("tr a-z A-Z")
        channel.send(b"through the bridge")
        channel.shutdown_write()
        got = b""
        while data := channel.recv(100):
            got += data
        assert got == b"THROUGH THE BRIDGE"
        channel.close()
    finally:
        shell.close()


def test_a_host_key_other_than_the_pinned_one_is_refused(server: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    write_key_pair(generate_ed25519("impostor"), other)
    write_known_hosts(server.endpoint.known_hosts, {server.endpoint.port: read_public(other)})
    with pytest.raises(HostKeyMismatch, match="is not the pinned one") as failure:
        ssh.connect(server.endpoint)
    assert failure.value.__cause__ is not None  # paramiko's BadHostKeyException, for --debug


def test_a_closed_port_is_unreachable_with_the_socket_error_as_cause(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "known_hosts").write_text("")
    endpoint = Endpoint("node9", port, "lab", tmp_path / "id_ed25519", tmp_path / "known_hosts")
    with pytest.raises(NodeUnreachable, match=f"^node node9: SSH to port {port}: NoValidConnectionsError"):
        ssh.connect(endpoint, timeout=2)


def test_commands_are_logged_at_debug(server: Sshd, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="provisioner"):
        shell = ssh.connect(server.endpoint)
        shell.run("echo logged")
        shell.close()
    messages = [record.getMessage() for record in caplog.records if record.name == "provisioner.remote.ssh"]
    assert "ssh node1: run: echo logged" in messages and "ssh node1: exit 0" in messages
