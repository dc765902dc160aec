"""The agent's upload goes to a fresh mktemp directory, and no uploaded path is shell syntax.

Lab-file containers travel as JSON create bodies (tests/unit/test_createbody.py), never in a shell line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from provisioner import agent
from provisioner.errors import RemoteError
from provisioner.lab.engine import load_command
from provisioner.remote.seam import CommandResult, Endpoint
from tests.unit.host.fakes import FakeNodes, FakeShell

WORKDIR = "/tmp/lab-agent.Zq3xY7pA0b"


def shell_with(mktemp: CommandResult | None = None, fail_put: bool = False) -> tuple[FakeNodes, FakeShell]:
    """A node whose mktemp answers MKTEMP (a good fresh directory by default)."""
    nodes = FakeNodes()
    nodes.answer("mktemp -d ", mktemp or CommandResult(0, WORKDIR + "\n"))
    if fail_put:
        nodes.put_error = RemoteError("node node1: copying failed: OSError: sftp: connection lost")
    return nodes, nodes.connect(Endpoint("node1", 40001, "lab", Path("k"), Path("kh")))


def test_every_upload_goes_into_the_fresh_mktemp_directory() -> None:
    nodes, shell = shell_with()
    workdir = agent.upload(shell)
    assert workdir == WORKDIR
    assert nodes.commands["node1"] == ["mktemp -d /tmp/lab-agent.XXXXXXXXXX"] + [
        f"put {WORKDIR}/{name}" for name in agent.UPLOADS
    ]
    files = {remote: data for (node, remote), data in nodes.files.items()}
    assert sorted(files) == sorted(f"{WORKDIR}/{name}" for name in agent.UPLOADS)
    script = files[f"{WORKDIR}/install.sh"].decode()
    uploads = set(re.findall(r"/tmp/[^\s'\";,]*", script))
    assert uploads and all(path == WORKDIR or path.startswith(WORKDIR + "/") for path in uploads), uploads
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


@pytest.mark.parametrize(
    "answer",
    [CommandResult(0, "/tmp/lab-agent.x; rm -rf /\n"), CommandResult(0, "/tmp/lab-agent\n"), CommandResult(0, ""),
     CommandResult(0, "/home/lab/lab-agent.Zq3xY7pA0b\n"), CommandResult(0, "/tmp/other.Zq3xY7pA0b\n"),
     CommandResult(1, "", "mktemp: failed to create directory: No space left on device")],
)
def test_a_bad_mktemp_answer_stops_the_upload(answer: CommandResult) -> None:
    nodes, shell = shell_with(mktemp=answer)
    with pytest.raises(RemoteError, match="node node1: mktemp -d failed"):
        agent.upload(shell)
    assert nodes.files == {}


def test_a_failed_upload_removes_its_directory() -> None:
    nodes, shell = shell_with(fail_put=True)
    with pytest.raises(RemoteError, match="sftp: connection lost"):
        agent.upload(shell)
    assert nodes.commands["node1"][-1] == f"rm -rf {WORKDIR}"


def test_a_failed_install_names_the_last_line_of_stderr() -> None:
    nodes, shell = shell_with()
    nodes.answer("sudo -n sh ", CommandResult(100, "Reading package lists...\n", "W: one\nE: the real problem\n\n"))
    with pytest.raises(RemoteError, match=r"^node node1: installing the guest agent failed: E: the real problem$"):
        agent.install(shell, WORKDIR)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`sudo -n CMD` runs CMD; `labctl` writes its argv as JSON to $ARGV_FILE and exits 3."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (bin_dir / "labctl").write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        "open(os.environ['ARGV_FILE'], 'w').write(json.dumps(sys.argv[1:]))\nsys.exit(3)\n"
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ARGV_FILE", str(tmp_path / "argv.json"))
    return tmp_path


def test_install_runs_the_script_and_removes_the_directory_whatever_its_outcome(fake_bin: Path) -> None:
    workdir = fake_bin / "lab-agent.Zq3xY7pA0b"
    workdir.mkdir()
    (workdir / "install.sh").write_text(f"touch {fake_bin}/installed; exit 7\n")
    done = subprocess.run(["sh", "-c", agent.install_command(str(workdir))])
    assert done.returncode == 7
    assert (fake_bin / "installed").exists() and not workdir.exists()


def test_image_push_loads_from_and_removes_only_its_own_directory(fake_bin: Path) -> None:
    workdir = fake_bin / "lab-push.dir; touch pwned"
    workdir.mkdir()
    (fake_bin / "keep").write_text("keep")
    done = subprocess.run(["sh", "-c", load_command(str(workdir), f"{workdir}/image.tar")], cwd=fake_bin)
    assert done.returncode == 3
    assert json.loads((fake_bin / "argv.json").read_text()) == ["load", "-i", f"{workdir}/image.tar"]
    assert not workdir.exists() and not (fake_bin / "pwned").exists() and (fake_bin / "keep").exists()
