"""Bad input at the CLI: one line naming the problem, exit status 2, nothing created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioner.cli", *args], capture_output=True, text=True)


def labs_created(home: Path) -> list[str]:
    labs = home / "labs"
    return sorted(p.name for p in labs.iterdir()) if labs.is_dir() else []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: bad\nnodes: {n1: {memory: 128M}}\n", "nodes.n1.memory: 128M is below the 224 MiB"),
        ("name: bad\nnodes: {n1: {colour: red}}\n", "nodes.n1.colour: unknown field"),
        ("name: bad\nnodes: {N_1: {}}\n", "nodes.N_1: 'N_1' is not a DNS label"),
        ("name: bad\nnodes: [\n", "invalid YAML"),
        ("name: bad\nnodes: {n1: {memory: 100G}, n2: {memory: 100G}}\n", "the host has"),
        ("name: bad\nnodes: {n1: {image: debian-99}}\n", "nodes.n1.image: unknown image 'debian-99'"),
    ],
)
def test_bad_lab_files(tmp_path: Path, private_lab_home: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    done = lab("create", str(path))
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert str(path) in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert labs_created(private_lab_home) == []


def test_unknown_lab_name(private_lab_home: Path) -> None:
    done = lab("create", "no-such-lab")
    assert done.returncode == 2 and "unknown lab 'no-such-lab'" in done.stderr


def test_unreachable_libvirt_leaves_nothing(tmp_path: Path, private_lab_home: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: unreach\nnodes: {n1: {}}\n")
    done = lab("create", str(path), "--connect", "test:///nonexistent-file.xml")
    assert done.returncode == 2, done.stderr
    assert "cannot open libvirt" in done.stderr
    assert "Traceback" not in done.stderr
    assert labs_created(private_lab_home) == []


def test_missing_host_tool(tmp_path: Path, private_lab_home: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: notools\nnodes: {n1: {}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "create", str(path)],
        capture_output=True, text=True, env={"PATH": "/nonexistent", "LAB_HOME": str(private_lab_home)},
    )
    assert done.returncode == 2
    assert "host tool 'qemu-system-x86_64' not found" in done.stderr
    assert labs_created(private_lab_home) == []


def test_status_of_an_unknown_lab(private_lab_home: Path) -> None:
    done = lab("status", "ghost")
    assert done.returncode == 2 and "no lab named 'ghost'" in done.stderr


def test_destroy_of_an_unknown_lab_is_a_no_op(private_lab_home: Path) -> None:
    done = lab("destroy", "ghost")
    assert done.returncode == 0 and "nothing to destroy" in done.stdout

