"""Gathers the figures: the ledger and QEMU for the VMs, a node's engine for the containers."""

from __future__ import annotations

import json
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RemoteError
from ..guest import MEASURE_CONTAINERS
from ..images.store import Image, ImageStore
from ..lab.inspect import status
from ..lab.session import LabSession
from ..paths import images_dir
from ..remote import open_checked, remote_tempdir
from ..state import LabState


@dataclass
class Comparison:
    lab: str
    node: str
    vm_ready_s: list[float]
    vm_rss_mib: list[float]
    vm_disk_mib: float
    vm_boot_ids: int
    vm_nodes: int
    container_start_s: float
    crun_start_s: float
    container_memory_mib: float
    container_disk_mib: float
    kernel_release: str
    container_kernel_shared: bool
    verify: dict[str, str] = field(default_factory=dict)


def allocated_mib(path: Path) -> float:
    return path.stat().st_blocks * 512 / 2**20 if path.exists() else 0.0


def measure(name: str, runs: int = 5) -> Comparison:
    state = LabState(name)
    ledger = state.load()
    session = LabSession(state, ledger)
    node = next(iter(ledger.nodes.values()))
    nodes = status(name).nodes
    rss = [n.rss_mib for n in nodes if n.rss_mib]
    boot_ids = {n.boot_id for n in nodes if n.boot_id}
    images = {image.name: image for image in ImageStore(images_dir()).images()}
    base: Image | None = images.get(node.image)
    vm_disk = (allocated_mib(base.disk) if base else 0.0) + allocated_mib(Path(node.overlay))
    connection = open_checked(session.endpoint(node))
    try:
        # A private mktemp dir: the script runs as root, so no other node user may plant or swap it.
        workdir = remote_tempdir(connection, node.name, "lab-measure")
        script = shlex.quote(f"{workdir}/measure.py")
        connection.put(str(MEASURE_CONTAINERS), f"{workdir}/measure.py")
        result = connection.run(f"sudo -n python3 {script} {int(runs)}; rc=$?; rm -rf {shlex.quote(workdir)}; exit $rc",
                                hide=True, warn=True, in_stream=False)
        if result.exited != 0:
            raise RemoteError(f"node {node.name}: measuring containers failed: {result.stderr.strip()[-200:]}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        probe = connection.run("uname -r; labctl run --rm busybox uname -r", hide=True, warn=True, in_stream=False)
    finally:
        connection.close()
    release, container_release = (probe.stdout.strip().splitlines() + ["", ""])[:2]
    verify_path = state.verify_results
    verify = json.loads(verify_path.read_text()) if verify_path.is_file() else {}
    return Comparison(
        lab=name, node=node.name,
        vm_ready_s=[r.timings["ready"] for r in ledger.nodes.values() if "ready" in r.timings],
        vm_rss_mib=rss, vm_disk_mib=round(vm_disk, 1), vm_boot_ids=len(boot_ids), vm_nodes=len(nodes),
        container_start_s=figures["engine_median_s"], crun_start_s=figures["crun_median_s"],
        container_memory_mib=round(figures["container_memory_bytes"] / 2**20, 2),
        container_disk_mib=round((figures["layers_bytes"] + figures["upper_bytes"]) / 2**20, 2),
        kernel_release=release, container_kernel_shared=container_release == release,
        verify=verify,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
