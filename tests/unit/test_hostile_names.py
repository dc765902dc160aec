"""Hostile lab and node names: refused as DNS labels before any path is built, in every command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioner import names
from provisioner.cli import main
from provisioner.errors import BadNameError
from provisioner.lab import access
from provisioner.state import LabState, Ledger, NodeRecord, all_labs

HOSTILE = ["..", "../..", "a/../../x", "/etc", ".", "-rf", "A", "a_b", "x" * 64, "a-", "node1\n", "[/red]", ""]

# Every command that takes a lab name (and a node name, where it takes one).
LAB_COMMANDS = [
    ["destroy", "{lab}"], ["status", "{lab}"], ["stop", "{lab}"], ["start", "{lab}"],
    ["ssh", "{lab}", "node1"], ["ssh-config", "{lab}"], ["inventory", "{lab}"],
    ["exec", "{lab}", "node1", "--", "true"], ["verify", "{lab}"], ["report", "{lab}"],
    ["image", "push", "{lab}", "node1", "x.tar"], ["agent", "deploy", "{lab}"],
    ["docker", "{lab}", "node1", "--", "ps"], ["docker-env", "{lab}", "node1"],
]
NODE_COMMANDS = [
    ["ssh", "demo", "{node}"], ["exec", "demo", "{node}", "--", "true"],
    ["image", "push", "demo", "{node}", "x.tar"], ["docker", "demo", "{node}", "--", "ps"],
    ["docker-env", "demo", "{node}"], ["docker-env", "-u", "demo", "{node}"],
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A LAB_HOME with a real lab `demo` in it, inside a tree of sentinel files."""
    home = tmp_path / "home"
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    state = LabState("demo")
    state.claim()
    node = NodeRecord(name="node1", domain="lab-demo-node1", ssh_port=40999, mac="52:54:00:00:00:09",
                      overlay="o", seed="s", console_log="c", host_key="k", memory_mib=512, cpus=1, image="debian-12")
    state.save(Ledger(name="demo", uri="test:///default", source="x.yaml", instance="i", nodes={"node1": node}))
    return home


def sentinels(root: Path) -> list[Path]:
    """Files at every level a `..` could reach from LAB_HOME/labs/NAME."""
    made = []
    for directory in (root, root / "home", root / "home" / "labs", root / "home" / "labs" / "a", root / "x"):
        directory.mkdir(parents=True, exist_ok=True)
        made.append(directory / "sentinel")
        made[-1].write_text("keep me")
    return made


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("name", HOSTILE)
def test_the_name_check_refuses(name: str) -> None:
    with pytest.raises(BadNameError, match="is not a DNS label"):
        names.lab_name(name)
    with pytest.raises(BadNameError):
        LabState(name)


@pytest.mark.parametrize("name", ["a", "demo", "two-node", "n1", "0", "a" * 63])
def test_dns_labels_pass(name: str) -> None:
    assert LabState(name).dir.name == name


@pytest.mark.parametrize("command", LAB_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("name", ["..", "../..", "a/../../x", "[/red]"])
def test_every_command_refuses_a_hostile_lab_name(home: Path, tmp_path: Path, command: list[str], name: str) -> None:
    kept = sentinels(tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(main, [word.format(lab=name) for word in command])
    assert result.exit_code == 2, result.output
    assert "is not a DNS label" in one_line_error(result.output)
    assert all(path.read_text() == "keep me" for path in kept)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", NODE_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("name", ["..", "../../x", "n1;id", "N1", "n1-"])
def test_every_command_refuses_a_hostile_node_name(home: Path, command: list[str], name: str) -> None:
    result = CliRunner().invoke(main, [word.format(node=name) for word in command])
    assert result.exit_code == 2, result.output
    assert "node name" in one_line_error(result.output) and "is not a DNS label" in result.output
    assert not (home / "labs" / "demo" / "docker").exists()


def test_node_names_are_checked_where_they_are_looked_up_and_turned_into_paths(home: Path) -> None:
    state = LabState("demo")
    ledger = state.load()
    with pytest.raises(BadNameError):
        access.node_record(ledger, "../node1")
    with pytest.raises(BadNameError):
        state.node_dir("..")
    with pytest.raises(BadNameError):
        state.proxy_socket("../../x")


def test_a_ledger_whose_names_are_not_labels_is_refused(home: Path) -> None:
    state = LabState("demo")
    text = state.ledger_path.read_text()
    state.ledger_path.write_text(text.replace('"node1"', '"../evil"'))
    result = CliRunner().invoke(main, ["status", "demo"])
    assert result.exit_code == 1 and "not a readable ledger" in one_line_error(result.output)
    state.ledger_path.write_text(text.replace('"name": "demo"', '"name": "other"'))
    result = CliRunner().invoke(main, ["ssh-config", "demo"])
    assert result.exit_code == 1 and "lab 'other'" in one_line_error(result.output)


def test_directories_that_are_not_labels_are_not_labs(home: Path) -> None:
    (home / "labs" / "Not_A_Lab").mkdir()
    (home / "labs" / "link").symlink_to(home)
    assert [lab.name for lab in all_labs()] == ["demo"]


def test_create_refuses_a_hostile_bare_name() -> None:
    result = CliRunner().invoke(main, ["create", ".."])
    assert result.exit_code == 2 and "unknown lab '..'" in one_line_error(result.output)


@pytest.mark.parametrize("name", ["../..", "..", "a/../../x"])
def test_destroy_of_a_path_exits_2_and_deletes_nothing(tmp_path: Path, name: str) -> None:
    """The acceptance test of the issue, through a real `python -m provisioner.cli`."""
    kept = sentinels(tmp_path)
    (tmp_path / "home" / "labs" / "x").mkdir()
    (tmp_path / "home" / "labs" / "x" / "ledger.json").write_text("{}")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    env = {**os.environ, "LAB_HOME": str(tmp_path / "home"), "LAB_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "provisioner.cli", "destroy", name],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert f"lab name {name!r} is not a DNS label" in one_line_error(done.stderr)
    assert done.stdout == ""
    assert all(path.read_text() == "keep me" for path in kept)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
