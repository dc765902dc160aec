"""`lab --debug`: an error's causes and the libvirt and SSH calls; without it, one line per error."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioner.cli import main
from provisioner.console import set_debug
from tests.unit.host.conftest import seams_for, write_lab
from tests.unit.host.fakes import FakeHypervisor, FakeNodes
from tests.unit.host.sshd import sshd


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioner.cli", *args], capture_output=True, text=True)


@pytest.fixture
def unreachable(tmp_path: Path, private_lab_home: Path) -> str:
    path = tmp_path / "ok.yaml"
    path.write_text("name: unreach\nnodes: {n1: {}}\n")
    return str(path)


def test_without_debug_an_error_is_one_line(unreachable: str) -> None:
    done = lab("create", unreachable, "--connect", "test:///nonexistent-file.xml")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if "error" in line.lower()] == lines[-1:]  # the notes before it are create's
    assert lines[-1].startswith("error: cannot open libvirt at test:///nonexistent-file.xml: ")
    assert "libvirtError" not in done.stderr and "Traceback" not in done.stderr and "libvirt: open" not in done.stderr


def test_debug_shows_the_cause_and_logs_the_libvirt_calls(unreachable: str, private_lab_home: Path) -> None:
    done = lab("--debug", "create", unreachable, "--connect", "test:///nonexistent-file.xml")
    assert done.returncode == 2
    assert "libvirt: open test:///nonexistent-file.xml" in done.stderr  # the call, logged
    assert "libvirtError" in done.stderr  # libvirt's own exception, the cause
    assert "UnreachableHypervisorError" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot open libvirt at test:///nonexistent-file.xml")
    assert not (private_lab_home / "labs" / "unreach").exists()


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeHypervisor, FakeNodes]]:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    write_lab("dbg", "ready", ["node1", "node2"])
    nodes = FakeNodes()
    nodes.unreachable["node2"] = math.inf
    yield FakeHypervisor(), nodes
    set_debug(False)


def test_debug_prints_an_ssh_failures_chain(fakes: tuple[FakeHypervisor, FakeNodes]) -> None:
    seams = seams_for(*fakes)
    quiet = CliRunner().invoke(main, ["agent", "deploy", "dbg"], obj=seams)
    assert quiet.exit_code == 1
    assert quiet.stderr.splitlines() == ["error: node node2: SSH to port 40102: refused"]
    loud = CliRunner().invoke(main, ["--debug", "agent", "deploy", "dbg"], obj=seams)
    assert loud.exit_code == 1
    assert "ConnectionRefusedError" in loud.stderr and "NodeUnreachable" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == "error: node node2: SSH to port 40102: refused"


def test_debug_logs_the_ssh_commands_of_a_real_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab exec` with the CLI's own seams, against an SSH server in this process."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    state = write_lab("sx", "ready", ["node1"])
    try:
        with sshd(state.dir) as server:  # the lab's user key and known_hosts, where the lab keeps them
            ledger = state.load()
            ledger.nodes["node1"].ssh_port = server.endpoint.port
            state.save(ledger)
            quiet = CliRunner().invoke(main, ["exec", "sx", "node1", "--", "echo", "hi"])
            assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "hi\n", "")
            loud = CliRunner().invoke(main, ["--debug", "exec", "sx", "node1", "--", "echo", "hi"])
            assert (loud.exit_code, loud.stdout) == (0, "hi\n")
            assert "ssh node1: connecting to lab@127.0.0.1:" in loud.stderr
            assert "ssh node1: run: echo hi" in loud.stderr and "ssh node1: exit 0" in loud.stderr
    finally:
        set_debug(False)
