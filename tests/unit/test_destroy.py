"""`lab destroy` removes what the lab's ledger records, and ends only the processes it records."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from provisioner.cli import main
from provisioner.hypervisor.libvirt_domains import open_libvirt
from provisioner.lab.teardown import ABSENT, DESTROYED, REFUSED, Destroyed
from provisioner.lab.teardown import destroy as destroy_with
from provisioner.processes import ProcessId, identify
from provisioner.seams import Seams, real_seams
from provisioner.state import LabState, Ledger, NodeRecord

# The embedded driver needs QEMU; libvirt's test driver stands in (it has no lab domains).
SEAMS = Seams(hypervisor=lambda uri, marker: open_libvirt("test:///default", marker),
              connect=real_seams().connect, image=real_seams().image)


def destroy(name: str) -> Destroyed:
    return destroy_with(name, SEAMS)


def lab(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), obj=SEAMS)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    return home


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes this test starts (and ends, by their handles, whatever happens)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()


def sleeper(sleepers: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], ProcessId]:
    child = subprocess.Popen(["sleep", "60"])
    sleepers.append(child)
    process = identify(child.pid)
    assert process is not None
    return child, process


def make_lab(name: str = "demo", qemu: ProcessId | None = None, proxy: ProcessId | None = None) -> LabState:
    """A lab's directory as `lab create`, `lab verify` and `lab docker-env` leave it."""
    state = LabState(name)
    state.claim()
    node_dir = state.node_dir("node1")
    node_dir.mkdir(parents=True)
    record = NodeRecord(
        name="node1", domain=f"lab-{name}-node1", ssh_port=40123, mac="52:54:00:00:00:01",
        overlay=str(node_dir / "disk.qcow2"), seed=str(node_dir / "seed.iso"),
        console_log=str(node_dir / "console.log"), host_key=str(node_dir / "ssh_host_ed25519_key"),
        memory_mib=512, cpus=1, image="debian-12", process=qemu,
    )
    for path in (record.overlay, record.seed, record.console_log, record.host_key, record.host_key + ".pub"):
        Path(path).write_text("lab's")
    for path in (state.user_key, Path(f"{state.user_key}.pub"), state.known_hosts, state.verify_results):
        path.write_text("lab's")
    (state.libvirt_root / "etc").mkdir(parents=True)
    (state.libvirt_root / "etc" / "qemu.conf").write_text("lab's")
    state.docker_dir.mkdir()
    state.proxy_socket("node1").with_suffix(".log").write_text("lab's")
    state.save(Ledger(
        name=name, uri=f"qemu:///embed?root={state.libvirt_root}", source="x.yaml", instance="i",
        nodes={"node1": record}, proxies={"node1": proxy} if proxy else {},
    ))
    return state


def outside(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "precious").write_text("not lab's")
    return victim / "precious"


def test_a_whole_lab_goes_and_its_recorded_processes_end(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    qemu_child, qemu = sleeper(sleepers)
    proxy_child, proxy = sleeper(sleepers)
    state = make_lab(qemu=qemu, proxy=proxy)
    precious = outside(tmp_path)
    result = destroy("demo")
    assert (result.outcome, result.problems) == (DESTROYED, [])
    assert not state.dir.exists() and state.dir.parent.is_dir()
    assert qemu_child.wait(timeout=10) == -signal.SIGTERM
    assert proxy_child.wait(timeout=10) == -signal.SIGTERM
    assert precious.read_text() == "not lab's"
    assert destroy("demo").outcome == ABSENT


def test_a_directory_without_a_ledger_is_not_deleted(home: Path) -> None:
    lab_dir = home / "labs" / "mine"
    lab_dir.mkdir(parents=True)
    (lab_dir / "thesis.tex").write_text("not lab's")
    (lab_dir / "id_ed25519").write_text("not lab's either")
    result = lab("destroy", "mine")
    assert result.exit_code == 1
    assert "holds no ledger" in result.output and "nothing removed" in result.output
    assert sorted(p.name for p in lab_dir.iterdir()) == ["id_ed25519", "thesis.tex"]  # not even a lock file


def test_destroy_all_touches_only_labs_with_ledgers(home: Path) -> None:
    make_lab("one")
    make_lab("two")
    bare = home / "labs" / "bare"
    bare.mkdir()
    (bare / "notes").write_text("not lab's")
    (home / "labs" / "Odd_Name").mkdir()
    result = lab("destroy", "--all")
    assert result.exit_code == 0, result.output
    assert "lab one: destroyed" in result.output and "lab two: destroyed" in result.output
    assert "bare" not in result.output
    assert sorted(p.name for p in (home / "labs").iterdir()) == ["Odd_Name", "bare"]
    assert (bare / "notes").read_text() == "not lab's"


@pytest.mark.parametrize("field", ["overlay", "console_log", "host_key"])
@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_a_ledger_naming_a_path_outside_the_lab_does_not_remove_it(tmp_path: Path, field: str, how: str) -> None:
    state = make_lab()
    precious = outside(tmp_path)
    ledger = state.load()
    hostile = str(precious) if how == "absolute" else f"{state.dir}/nodes/../../../../victim/precious"
    setattr(ledger.nodes["node1"], field, hostile)
    state.save(ledger)
    result = destroy("demo")
    assert precious.read_text() == "not lab's"
    assert result.outcome == DESTROYED and any("not removed" in problem for problem in result.problems)
    assert state.ledger_path.is_file()  # kept: the lab is not gone, and a second destroy may finish


def test_a_symlinked_directory_inside_the_lab_is_not_followed(tmp_path: Path) -> None:
    state = make_lab()
    precious = outside(tmp_path)
    (precious.parent / "disk.qcow2").write_text("not lab's")
    for path in state.node_dir("node1").iterdir():
        path.unlink()
    state.node_dir("node1").rmdir()
    state.node_dir("node1").symlink_to(precious.parent)
    state.libvirt_root.rename(tmp_path / "moved-libvirt")
    state.libvirt_root.symlink_to(precious.parent)
    result = destroy("demo")
    assert (precious.parent / "disk.qcow2").read_text() == "not lab's"
    assert precious.read_text() == "not lab's"
    assert any("Not a directory" in p for p in result.problems), result.problems


def test_files_lab_did_not_make_are_kept_and_named(home: Path) -> None:
    state = make_lab()
    (state.dir / "my-notes.txt").write_text("not lab's")
    result = lab("destroy", "demo")
    assert result.exit_code == 1
    assert "holds files lab did not make (my-notes.txt)" in result.output
    assert sorted(p.name for p in state.dir.iterdir()) == ["my-notes.txt"]


def test_a_reused_pid_is_not_signalled(sleepers: list[subprocess.Popen[bytes]]) -> None:
    """The ledger's PID now belongs to another process (another start time): it is left alone."""
    child, process = sleeper(sleepers)
    stale = process.model_copy(update={"start_ticks": process.start_ticks - 1})
    other_boot = process.model_copy(update={"boot_id": "not-this-boot"})
    make_lab(qemu=stale, proxy=other_boot)
    assert destroy("demo").outcome == DESTROYED
    assert child.poll() is None


def test_destroy_by_cli_reports_and_repeats(home: Path) -> None:
    make_lab()
    first = lab("destroy", "demo")
    assert first.exit_code == 0 and "lab demo: destroyed" in first.output
    again = lab("destroy", "demo")
    assert again.exit_code == 0 and "nothing to destroy" in again.output
    assert REFUSED != DESTROYED
