"""pytest plugin: `--lab LAB` gives testinfra hosts for each node and each container.

    pytest --lab two-node my_checks.py      (the plugin is registered as a pytest11 entry point)

Fixtures: `lab_ledger` (the lab's ledger), `nodes` (node name -> testinfra Host over the lab's
pinned SSH), `node_host(name)`, `container_host(node, name)` and `probes` (containers the
suite starts on the first node and removes afterwards).
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra
import testinfra.host

from ..lab.access import ssh_config
from ..state import LabState, Ledger
from .containers import container_host as _container_host


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lab")
    group.addoption("--lab", help="name of the lab to run against")
    group.addoption("--probe-memory", default="32M",
                    help="memory limit of the probe containers ('none' for no limit)")
    group.addoption("--probe-pid-mode", default="", help="'host' shares the node's pid namespace")


@pytest.fixture(scope="session")
def lab_ledger(request: pytest.FixtureRequest) -> Ledger:
    name = request.config.getoption("--lab")
    if not name:
        pytest.skip("no --lab given")
    return LabState(name).load()


@pytest.fixture(scope="session")
def ssh_config_file(lab_ledger: Ledger) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lab-verify-") as tmp:
        path = Path(tmp) / "ssh_config"
        path.write_text(ssh_config(lab_ledger.name))
        yield path
        for node in lab_ledger.nodes:  # end the multiplexed connections testinfra opened
            subprocess.run(["ssh", "-F", str(path), "-O", "exit", node],
                           capture_output=True, check=False, timeout=30)


@pytest.fixture(scope="session")
def nodes(lab_ledger: Ledger, ssh_config_file: Path) -> dict[str, testinfra.host.Host]:
    return {
        name: testinfra.get_host(f"ssh://{name}?controlpersist=120", ssh_config=str(ssh_config_file))
        for name in lab_ledger.nodes
    }


@pytest.fixture(scope="session")
def node_host(nodes: dict[str, testinfra.host.Host]) -> Callable[[str], testinfra.host.Host]:
    return nodes.__getitem__


@pytest.fixture(scope="session")
def container_host(
    nodes: dict[str, testinfra.host.Host],
) -> Callable[[str, str], testinfra.host.Host]:
    def make(node: str, container: str) -> testinfra.host.Host:
        return _container_host(nodes[node], container)

    return make


@dataclass
class Probes:
    """Two sibling containers on one node, started for the checks and removed after."""

    node: str
    host: testinfra.host.Host
    first: str
    second: str
    memory: str

    def run(self, *words: str) -> testinfra.host.CommandResult:
        return self.host.run(shlex.join(["labctl", *words]))


@pytest.fixture(scope="session")
def probes(
    request: pytest.FixtureRequest, lab_ledger: Ledger, nodes: dict[str, testinfra.host.Host]
) -> Iterator[Probes]:
    node = next(iter(lab_ledger.nodes))
    host = nodes[node]
    tag = uuid.uuid4().hex[:6]
    memory = request.config.getoption("--probe-memory")
    pid_mode = request.config.getoption("--probe-pid-mode")
    probe = Probes(node, host, f"verify-{tag}-a", f"verify-{tag}-b", memory)
    options = [] if memory == "none" else ["--memory", memory]
    if pid_mode:
        options += ["--pid", pid_mode]
    try:
        for name in (probe.first, probe.second):
            started = probe.run("run", "-d", "--name", name, *options, "busybox", "sleep", "3600")
            assert started.rc == 0, f"probe container {name} did not start: {started.stderr}"
        yield probe
    finally:
        probe.run("rm", "-f", probe.first, probe.second)
