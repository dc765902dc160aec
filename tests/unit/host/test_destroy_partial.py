"""`lab destroy` after a `lab create` that was killed mid-way: the ledger finds everything."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from provisioner.lab.teardown import DESTROYED, destroy
from provisioner.state import LabState

from .conftest import Host, seams_for, write_lab
from .fakes import FakeHypervisor

ROOT = Path(__file__).resolve().parents[3]


def test_destroy_after_create_was_killed(host: Host, tmp_path: Path) -> None:
    store = tmp_path / "domains.json"
    killed = subprocess.run(
        [sys.executable, "-m", "tests.unit.host.killed_create", host.labfile("crash"), str(store),
         str(tmp_path / "image")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = LabState("crash")
    ledger = state.load()
    assert ledger.phase == "creating"  # no rollback ran
    assert json.loads(store.read_text()) == {"lab-crash-node1": "running", "lab-crash-node2": "stopped"}
    left = [path for path in state.layout(ledger).files if path.exists()]
    assert Path(ledger.nodes["node1"].overlay) in left and Path(ledger.nodes["node2"].overlay) in left

    hypervisor = FakeHypervisor(store)
    result = destroy("crash", seams_for(hypervisor, host.nodes))

    assert (result.outcome, result.problems) == (DESTROYED, [])
    assert json.loads(store.read_text()) == {}
    assert not state.dir.exists() and not any(path.exists() for path in left)
    assert sorted(name for op, name in hypervisor.calls if op == "remove") == ["lab-crash-node1", "lab-crash-node2"]


def test_destroy_when_only_some_domains_were_defined(host: Host) -> None:
    """Killed between defining node1 and node2: node2 is in the ledger, not on the hypervisor."""
    write_lab("half", "creating", ["node1", "node2"])
    host.hypervisor.domains = {"lab-half-node1": "stopped", "someone-elses": "running"}
    result = destroy("half", host.seams)
    assert (result.outcome, result.problems) == (DESTROYED, [])
    assert host.hypervisor.domains == {"someone-elses": "running"}  # only what the ledger records goes
    assert not LabState("half").dir.exists()
