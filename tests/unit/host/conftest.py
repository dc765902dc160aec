"""A private LAB_HOME per test, a tiny base image, and the fakes wired as Seams."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner.images.recipe import Recipe
from provisioner.images.store import Image
from provisioner.seams import Seams
from provisioner.state import LabState, Ledger, NodeRecord

from .fakes import FakeHypervisor, FakeNodes

TWO_NODES = """name: {name}
nodes:
  node1:
    containers:
      web: {{image: busybox, command: [httpd, -f, -p, "80"], publish: ["8080:80"]}}
  node2: {{}}
links:
  - endpoints: [node1:eth1, node2:eth1]
    subnet: 10.10.0.0/24
"""


def base_image(directory: Path) -> Image:
    """A real (empty, 64 MiB) qcow2 for the overlays to stand on; nothing boots from it."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(directory / "base.qcow2"), "64M"], check=True)
    return Image(path=directory, name="debian-12", key="0" * 64, kernel="vmlinuz", initrd="initrd.img",
                 kernel_args=["root=LABEL=rootfs"], boot="fast", build_seconds=0.0, created=0.0)


@dataclass
class Host:
    """The fakes behind one test's Seams."""

    hypervisor: FakeHypervisor
    nodes: FakeNodes
    seams: Seams
    home: Path
    built: list[str]

    def labfile(self, name: str, text: str = TWO_NODES) -> str:
        path = self.home.parent / f"{name}.yaml"
        path.write_text(text.format(name=name))
        return str(path)


def seams_for(hypervisor: FakeHypervisor, nodes: FakeNodes, image: Image | None = None,
              built: list[str] | None = None) -> Seams:
    def source(recipe: Recipe, report: Callable[[str], None]) -> Image:
        assert image is not None, "this test builds no image"
        if built is not None:
            built.append(recipe.name)
        return image

    return Seams(hypervisor=hypervisor.open, connect=nodes.connect, image=source)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img (the README's set-up installs it) makes the overlays")
    home = tmp_path / "home"
    monkeypatch.setenv("LAB_HOME", str(home))
    hypervisor, nodes, built = FakeHypervisor(), FakeNodes(), []
    image = base_image(tmp_path / "image")
    return Host(hypervisor, nodes, seams_for(hypervisor, nodes, image, built), home, built)


def write_lab(name: str, phase: str, nodes: list[str], uri: str = "fake:///lab") -> LabState:
    """A lab's ledger as `lab create` leaves it, without its disks."""
    state = LabState(name)
    state.claim()
    records = {
        node: NodeRecord(name=node, domain=f"lab-{name}-{node}", ssh_port=40100 + i, mac=f"52:54:00:00:00:0{i}",
                         overlay=str(state.node_dir(node) / "disk.qcow2"), seed=str(state.node_dir(node) / "seed.iso"),
                         console_log=str(state.node_dir(node) / "console.log"),
                         host_key=str(state.node_dir(node) / "ssh_host_ed25519_key"),
                         memory_mib=512, cpus=1, image="debian-12", timings={"ready": 20.0})
        for i, node in enumerate(nodes, start=1)
    }
    state.save(Ledger(name=name, uri=uri, source=f"{name}.yaml", instance="i", phase=phase, nodes=records))
    return state
