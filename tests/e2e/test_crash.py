"""SIGKILL `lab create` mid-boot: the ledger still lets `lab destroy` remove everything."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioner.network import port_is_free

from .conftest import Lab, qemu_processes_under

pytestmark = pytest.mark.e2e


def booting_pid(state: Path) -> int | None:
    """The QEMU PID, once `lab create` has started the domain and recorded it."""
    try:
        pid: int | None = json.loads((state / "ledger.json").read_text())["nodes"]["n1"]["pid"]
    except (OSError, KeyError, ValueError):
        return None
    return pid


def test_destroy_after_create_was_killed_while_booting(
    lab: Lab, built_image: None, private_lab_home: Path, tmp_path: Path
) -> None:
    labfile = tmp_path / "crash.yaml"
    labfile.write_text("name: crash\nnodes:\n  n1: {memory: 256M}\n")
    state = private_lab_home / "labs" / "crash"
    creating = subprocess.Popen(
        [sys.executable, "-m", "provisioner.cli", "create", str(labfile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not booting_pid(state) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert booting_pid(state), "the VM never started"
        busy = lab("destroy", "crash", check=False)
        assert busy.returncode == 3 and "busy" in busy.stderr
        creating.send_signal(signal.SIGKILL)
        creating.wait(timeout=30)
    finally:
        if creating.poll() is None:
            creating.kill()
    port = json.loads((state / "ledger.json").read_text())["nodes"]["n1"]["ssh_port"]
    assert qemu_processes_under(state), "the guest outlives the killed create"
    lab("destroy", "crash")
    assert not state.exists()
    assert qemu_processes_under(state) == []
    assert port_is_free(port)
