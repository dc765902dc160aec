"""End-to-end fixtures: the real `lab` CLI, real QEMU through libvirt, real SSH.

Each lab is created once per module and destroyed by its fixture even when tests fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

Lab = Callable[..., subprocess.CompletedProcess[str]]


def run_lab(*args: str, check: bool = True, timeout: float = 900, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", *args],
        capture_output=True, text=True, timeout=timeout, **kwargs,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="session")
def lab() -> Lab:
    return run_lab


def ledger(home: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "labs" / name / "ledger.json").read_text())
    return data


def qemu_processes_under(path: Path) -> list[int]:
    """QEMU processes whose command line points into `path`: the lab's own."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in argv.split(b"\0")[0] and str(path).encode() in argv:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="session", autouse=True)
def no_vm_survives_the_session(private_lab_home: Path) -> Iterator[None]:
    yield
    subprocess.run([sys.executable, "-m", "provisioner.cli", "destroy", "--all"], capture_output=True)
    for pid in qemu_processes_under(private_lab_home):
        os.kill(pid, 9)


@pytest.fixture(scope="session")
def built_image(lab: Lab) -> None:
    """Build (or reuse) the image once, outside any lab's timing."""
    lab("image", "build", timeout=1800)


def created(lab: Lab, name: str) -> Iterator[str]:
    try:
        lab("create", name)
        yield name
    finally:
        lab("destroy", name, check=False)


@pytest.fixture(scope="session")
def two_node(lab: Lab, built_image: None) -> Iterator[str]:
    """One two-node lab for the engine, verify and lifecycle modules: boots are the cost."""
    yield from created(lab, "two-node")


# The shared two-node lab is used gently first and destructively last (kill, destroy).
MODULE_ORDER = [
    "test_crash", "test_single", "test_engine", "test_docker", "test_dockerpy", "test_compose", "test_hostile",
    "test_verify", "test_two_node",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.path.stem
        if "e2e" not in item.path.parts:
            return -1  # unit tests first: they fail fast
        return MODULE_ORDER.index(module) if module in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)  # stable: tests keep their order inside a module
