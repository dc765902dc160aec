"""The node seam's own parts: the one result type, fan-out, and waiting for a booting sshd."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

from provisioner.errors import BootError, HostKeyMismatch, RemoteError
from provisioner.remote import waiting
from provisioner.remote.fanout import fan_out, first_failure
from provisioner.remote.seam import CommandResult, Endpoint

from .fakes import FakeNodes

ENDPOINT = Endpoint("node1", 40001, "lab", Path("k"), Path("kh"))


@pytest.mark.parametrize(
    ("result", "line"),
    [
        (CommandResult(1, "out\n", "first\nsecond\n\n"), "second"),
        (CommandResult(1, "only stdout\nlast of it\n", ""), "last of it"),
        (CommandResult(1, "", "   \n"), "no output"),
        (CommandResult(1), "no output"),
    ],
)
def test_a_failed_command_is_named_by_its_last_line(result: CommandResult, line: str) -> None:
    assert not result.ok and result.last_line() == line
    with pytest.raises(RemoteError, match=f"^node n: it failed: {line}$"):
        result.check("node n: it failed")
    with pytest.raises(BootError):
        result.check("node n: it failed", BootError)


def test_a_successful_command_passes_its_check() -> None:
    result = CommandResult(0, "fine\n")
    assert result.ok and result.check("unused") is result


def test_fan_out_runs_at_once_and_keeps_the_order_and_each_error() -> None:
    barrier = threading.Barrier(3, timeout=5)  # all three must be running together

    def work(name: str) -> str:
        barrier.wait()
        if name == "b":
            raise RemoteError("b broke")
        return name.upper()

    results = fan_out(["c", "a", "b"], work)
    assert list(results) == ["c", "a", "b"]
    assert results["c"] == "C" and results["a"] == "A" and isinstance(results["b"], RemoteError)
    with pytest.raises(RemoteError, match="b broke"):
        first_failure(results)
    assert first_failure({"a": 1}) == {"a": 1} and fan_out([], work) == {}


def test_fan_out_honours_its_parallel_limit() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def work(name: str) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    fan_out([str(i) for i in range(6)], work, parallel=2)
    assert peak[0] == 2


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "RETRY_SECONDS", 0.01)


def test_waiting_retries_until_sshd_answers() -> None:
    nodes = FakeNodes()
    nodes.unreachable["node1"] = 3
    shell = waiting.wait_for_ssh(nodes.connect, ENDPOINT, 5.0, lambda: None)
    assert shell.node == "node1" and nodes.connects == ["node1"] * 4


def test_waiting_gives_up_with_the_last_reason_and_keeps_it_as_the_cause() -> None:
    nodes = FakeNodes()
    nodes.unreachable["node1"] = math.inf
    refused = r"^node node1: SSH not ready after 0 s \(ConnectionRefusedError: "
    with pytest.raises(RemoteError, match=refused) as failure:
        waiting.wait_for_ssh(nodes.connect, ENDPOINT, 0.1, lambda: None)
    assert isinstance(failure.value.__cause__, RemoteError)
    assert isinstance(failure.value.__cause__.__cause__, ConnectionRefusedError)


def test_waiting_stops_when_the_vm_died() -> None:
    nodes = FakeNodes()
    nodes.unreachable["node1"] = math.inf
    with pytest.raises(RemoteError, match="^node node1: the VM is crashed$"):
        waiting.wait_for_ssh(nodes.connect, ENDPOINT, 60.0, lambda: "the VM is crashed")
    assert nodes.connects == ["node1"]


def test_a_wrong_host_key_is_never_retried() -> None:
    nodes = FakeNodes()
    nodes.mismatched.add("node1")
    with pytest.raises(HostKeyMismatch):
        waiting.wait_for_ssh(nodes.connect, ENDPOINT, 60.0, lambda: None)
    assert nodes.connects == ["node1"]
