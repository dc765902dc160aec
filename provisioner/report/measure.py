"""Gathers the figures: the ledger and QEMU for the VMs, a node's engine for the containers."""

from __future__ import annotations

import json
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from labagent.contract import AGENT_DIR

from ..errors import RemoteError
from ..images.store import Image, ImageStore
from ..lab.inspect import status_of
from ..lab.session import reaching
from ..paths import images_dir
from ..seams import Seams


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


def guest_measure_argv(measurement: str, *args: str) -> list[str]:
    """The argv that runs labagent.measure.<measurement> as root on a node, from the deployed agent."""
    return ["sudo", "-n", "env", f"PYTHONPATH={AGENT_DIR}", "python3", "-m", f"labagent.measure.{measurement}", *args]


def allocated_mib(path: Path) -> float:
    return path.stat().st_blocks * 512 / 2**20 if path.exists() else 0.0


def measure(name: str, seams: Seams, runs: int = 5) -> Comparison:
    """One connection per node for the whole report: the status probe's is reused here."""
    with reaching(name, seams) as lab:
        state, ledger = lab.state, lab.ledger
        node = next(iter(ledger.nodes.values()))
        nodes = status_of(lab).nodes
        rss = [n.rss_mib for n in nodes if n.rss_mib]
        boot_ids = {n.boot_id for n in nodes if n.boot_id}
        images = {image.name: image for image in ImageStore(images_dir()).images()}
        base: Image | None = images.get(node.image)
        vm_disk = (allocated_mib(base.disk) if base else 0.0) + allocated_mib(Path(node.overlay))
        shell = lab.shell(node)
        # Part of the agent deployed on the node: nothing to upload.
        result = shell.run(shlex.join(guest_measure_argv("containers", str(int(runs)))))
        if not result.ok:
            raise RemoteError(f"node {node.name}: measuring containers failed: {result.stderr.strip()[-200:]}")
        figures = _figures(node.name, result.stdout)
        probe = shell.run("uname -r; labctl run --rm busybox uname -r")
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


def _figures(node: str, stdout: str) -> dict[str, float]:
    """The measurement script's last line: one JSON object of figures."""
    try:
        figures = json.loads(stdout.strip().splitlines()[-1])
        if not isinstance(figures, dict):
            raise ValueError("not a JSON object")
    except (IndexError, ValueError) as error:
        raise RemoteError(f"node {node}: the container measurement printed no figures") from error
    return figures


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
