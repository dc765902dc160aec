"""Signalling a container's init without crun: only a live process in the right cgroup."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from labagent.errors import BadParameter
from labagent.runtime.crun import parse_signal, signal_in_cgroup


def own_cgroup(pid: int) -> str:
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return lines[0].partition("::")[2] if len(lines) == 1 else ""


def test_a_process_in_another_cgroup_is_left_alone() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert not signal_in_cgroup(proc.pid, "/labagent/0123456789ab/ctr", signal.SIGKILL)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_a_gone_process_is_not_signalled() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    cgroup = own_cgroup(proc.pid) or "/"
    proc.kill()
    proc.wait()
    assert not signal_in_cgroup(proc.pid, cgroup, signal.SIGKILL)


def test_a_process_in_the_named_cgroup_gets_the_signal() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cgroup = own_cgroup(proc.pid)
        if not cgroup:
            pytest.skip("a cgroup v1 or hybrid host lists several hierarchies (guests are v2 only)")
        assert signal_in_cgroup(proc.pid, cgroup, signal.SIGTERM)
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("value", "number"), [
    ("SIGTERM", 15), ("TERM", 15), ("term", 15), ("15", 15), ("SIGHUP", 1), (9, 9), (None, 9), ("", 9),
])
def test_signals_are_named_as_docker_names_them(value: str | int | None, number: int) -> None:
    """`docker kill -s TERM` sends signal=TERM (the name was looked up by value and refused)."""
    assert parse_signal(value) == number


@pytest.mark.parametrize("value", ["SIGNOPE", "NOPE", "-1x"])
def test_an_unknown_signal_is_a_bad_parameter(value: str) -> None:
    with pytest.raises(BadParameter, match="invalid signal"):
        parse_signal(value)
