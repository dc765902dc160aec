"""labagent.contract is the one place the host and the guest agent name what they share.

A path of the contract written anywhere else in the code (the host, the agent, the templates,
the scripts) fails here; the templates get the paths through their render context.
"""

from __future__ import annotations

import re
from pathlib import Path

from labagent import client, contract
from labagent.contract import ContainerSpec
from labagent.measure import containers as measure_containers
from labagent.runtime import crun, mountns

from provisioner import agent, docker
from provisioner.remote.seam import CommandResult, Endpoint
from provisioner.state import NodeRecord
from tests.unit.host.fakes import FakeNodes

CHECKOUT = Path(__file__).resolve().parents[2]
CONTRACT_FILE = CHECKOUT / "guest-agent" / "labagent" / "contract.py"
# Code and what is rendered or run from it; the docs (*.md) and the tests (which pin the values
# on purpose, the e2e suite above all) may name the paths.
SCANNED = ("provisioner", "guest-agent", "templates", "labs", "bench", "setup.sh", "setup.py", "pyproject.toml")
SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache"}
# The contract's own words: its directories (the socket lies in RUN_DIR), the socket's file
# name, and the environment variable that overrides the socket.
WORDS = (contract.RUN_DIR, contract.STATE_ROOT, contract.AGENT_DIR, Path(contract.SOCKET).name, contract.SOCKET_ENV)


def scanned_files() -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        root = CHECKOUT / name
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        found += [
            path for path in paths
            if not SKIPPED_PARTS & set(path.parts) and not any(part.endswith(".egg-info") for part in path.parts)
            and path.suffix not in (".md", ".pyc")
        ]
    return found


def test_the_contract_is_the_only_place_its_paths_are_written() -> None:
    files = scanned_files()
    assert CONTRACT_FILE in files and len(files) > 100
    found = []
    for path in files:
        if path == CONTRACT_FILE:
            continue
        lines = path.read_text(errors="replace").splitlines()
        found += [f"{path.relative_to(CHECKOUT)}:{number}: {word}"
                  for number, line in enumerate(lines, 1) for word in WORDS if word in line]
    assert found == [], "write these through labagent.contract:\n" + "\n".join(found)


def test_the_socket_path_itself_is_in_the_contract_once() -> None:
    text = CONTRACT_FILE.read_text()
    assert contract.SOCKET == "/run/lab-agent/engine.sock"  # what the e2e suite and the docs name
    assert len(re.findall(r"^SOCKET = ", text, re.MULTILINE)) == 1


def test_one_class_is_named_container_spec_and_it_is_the_contracts() -> None:
    defining = [
        str(path.relative_to(CHECKOUT)) for path in scanned_files()
        if path.suffix == ".py" and re.search(r"^class ContainerSpec\b", path.read_text(), re.MULTILINE)
    ]
    assert defining == ["guest-agent/labagent/contract.py"]


def test_both_sides_take_their_paths_from_the_contract() -> None:
    assert client.DEFAULT_SOCKET == contract.SOCKET
    assert Path(contract.MOUNT_NS_PIN) == mountns.PIN
    assert crun.Runtime().state_dir == Path(contract.CRUN_ROOT)
    assert measure_containers.LAYERS == contract.LAYERS_DIR
    assert docker.BRIDGE_COMMAND.endswith(f"UNIX-CONNECT\\:{contract.SOCKET}' 2>/dev/null")
    assert agent.PING.count(contract.SOCKET) == 1


def test_the_installed_files_get_the_contracts_paths_through_their_render_context() -> None:
    nodes = FakeNodes()
    nodes.answer("mktemp -d ", CommandResult(0, "/tmp/lab-agent.Zq3xY7pA0b\n"))
    workdir = agent.upload(nodes.connect(Endpoint("node1", 40001, "lab", Path("k"), Path("kh"))))
    files = {remote.rsplit("/", 1)[1]: data.decode(errors="replace") for (_node, remote), data in nodes.files.items()
             if workdir in remote and not remote.endswith(".tar.gz")}
    unit, labctl, shim, install = files["lab-agent.service"], files["labctl"], files["docker"], files["install.sh"]
    assert f"-m labagent.server --socket {contract.SOCKET} --root {contract.STATE_ROOT}\n" in unit
    assert f"Environment=PYTHONPATH={contract.AGENT_DIR}" in unit
    assert f"PYTHONPATH={contract.AGENT_DIR} /usr/bin/python3 -m labagent.cli" in labctl
    assert f"SOCKET=${{{contract.SOCKET_ENV}:-{contract.SOCKET}}}" in shim
    assert f"unit=/etc/systemd/system/{contract.UNIT}\n" in install
    assert f"tar -xzf {workdir}/agent.tar.gz -C {contract.AGENT_DIR}.new" in install
    assert f"install -m 0755 {workdir}/docker /usr/local/bin/docker" in install


def test_the_ledger_keeps_the_contracts_spec_in_the_form_it_always_had() -> None:
    """A ledger written before the contract (the lab file's model dumped by field name) loads."""
    record = {
        "name": "node1", "domain": "lab-x-node1", "ssh_port": 40001, "mac": "52:54:00:00:00:01",
        "overlay": "/o", "seed": "/s", "console_log": "/c", "host_key": "k", "memory_mib": 512, "cpus": 1,
        "image": "debian-12",
        "containers": {"web": {"image": "busybox", "command": ["httpd", "-f"], "publish": ["8080:80"], "env": {},
                               "memory": "64M", "cpus": None, "pids_limit": None}},
    }
    loaded = NodeRecord.model_validate(record)
    web = ContainerSpec(image="busybox", command=["httpd", "-f"], publish=["8080:80"], memory="64M")
    assert loaded.containers == {"web": web}
    assert loaded.model_dump(mode="json")["containers"] == record["containers"]
