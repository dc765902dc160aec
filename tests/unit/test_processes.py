"""Processes are ended by a recorded PID only while it is still the recorded process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import docker
from provisioner.processes import ProcessId, identify, is_running, terminate
from provisioner.state import LabState, Ledger, NodeRecord


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    started = subprocess.Popen(["sleep", "60"])
    yield started
    if started.poll() is None:
        started.kill()
    started.wait()


def test_identity_is_pid_start_time_and_boot(child: subprocess.Popen[bytes]) -> None:
    process = identify(child.pid)
    assert process is not None and process.pid == child.pid and process.start_ticks > 0
    assert is_running(process)
    assert identify(os.getpid()) != process
    assert identify(0) is None and identify(-1) is None
    assert identify(2**22 + 17) is None  # above any pid_max


def test_terminate_ends_the_recorded_process(child: subprocess.Popen[bytes]) -> None:
    process = identify(child.pid)
    assert process is not None and terminate(process)
    assert child.wait(timeout=10) == -signal.SIGTERM


def test_terminate_escalates_to_sigkill() -> None:
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                 "print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline()  # the handler is in place
        process = identify(stubborn.pid)
        assert process is not None and terminate(process, timeout=0.5)
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
        stubborn.wait()


@pytest.mark.parametrize("change", [{"start_ticks": 1}, {"boot_id": "another-boot"}, {"pid": 2**22 + 17}])
def test_a_pid_that_is_no_longer_the_recorded_process_is_left_alone(
    child: subprocess.Popen[bytes], change: dict[str, object]
) -> None:
    process = identify(child.pid)
    assert process is not None
    stale = process.model_copy(update=change)
    assert not is_running(stale)
    assert terminate(stale) is False
    assert child.poll() is None


@pytest.fixture
def lab(private_lab_home: Path) -> Iterator[LabState]:
    import shutil

    state = LabState("px")
    state.claim()
    node = NodeRecord(name="n1", domain="lab-px-n1", ssh_port=40112, mac="52:54:00:00:00:02", overlay="o",
                      seed="s", console_log="c", host_key="k", memory_mib=512, cpus=1, image="debian-12")
    state.save(Ledger(name="px", uri="test:///default", source="x.yaml", instance="i", nodes={"n1": node}))
    yield state
    shutil.rmtree(state.dir)


def record_proxy(state: LabState, process: ProcessId) -> None:
    ledger = state.load()
    ledger.proxies["n1"] = process
    state.save(ledger)


def test_docker_env_unset_ends_the_proxy_the_ledger_records(lab: LabState, child: subprocess.Popen[bytes]) -> None:
    process = identify(child.pid)
    assert process is not None
    record_proxy(lab, process)
    assert docker.recorded_proxy("px", "n1") == process
    assert docker.stop_background("px", "n1") is True
    assert child.wait(timeout=10) == -signal.SIGTERM
    assert lab.load().proxies == {}


def test_docker_env_unset_leaves_a_reused_pid_alone(lab: LabState, child: subprocess.Popen[bytes]) -> None:
    process = identify(child.pid)
    assert process is not None
    record_proxy(lab, process.model_copy(update={"start_ticks": process.start_ticks + 1}))
    assert docker.recorded_proxy("px", "n1") is None
    assert docker.stop_background("px", "n1") is False
    assert child.poll() is None
    assert lab.load().proxies == {}  # the stale record is dropped


def test_a_proxy_that_fails_to_start_leaves_no_record(lab: LabState) -> None:
    """There is no node to reach: the proxy exits at once, and the ledger forgets it."""
    with pytest.raises(docker.DockerProxyError, match="failed"):
        docker.ensure_background("px", "n1", timeout=20)
    assert lab.load().proxies == {}
