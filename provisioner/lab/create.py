"""`lab create`: from a lab file to running, reachable nodes; rolled back on failure."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .. import labfile
from ..errors import LabFileError, UserInputError
from ..hosttools import require_tools
from ..hypervisor import accel as acceleration
from ..hypervisor.connection import embedded_root, embedded_uri
from ..images.recipe import Recipe, recipe_named
from ..images.store import Image
from ..keys import generate_ed25519, read_public, write_key_pair, write_known_hosts
from ..labfile import LabSpec
from ..network import PortAllocator, allocation_lock, mac_address, ports_in_ledgers
from ..paths import lab_home, state_dir
from ..progress import Reporter
from ..seams import Seams
from ..state import LabState, Ledger, NodeRecord
from ..units import parse_mebibytes
from .boot import DEFAULT_TIMEOUT, bring_up
from .nodes import domain_name, domain_spec, make_overlay, write_host_key, write_node_seed
from .session import LabSession, locked_session
from .teardown import teardown


@dataclass(frozen=True)
class CreateOptions:
    connect: str | None = None
    accel: str = "auto"
    timeout: float = DEFAULT_TIMEOUT
    parallel: int = max(2, os.cpu_count() or 2)


def host_memory_mib() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def check_fits_host(spec: LabSpec) -> None:
    total, host = spec.total_memory_mib, host_memory_mib()
    if host and total > host:
        raise UserInputError(
            f"{spec.source}: nodes: the nodes need {total} MiB of memory, the host has {host} MiB"
        )


def recipe_for(spec: LabSpec, node: str) -> Recipe:
    """The node's image recipe; a disk smaller than the image's own is refused here, not by qemu-img."""
    try:
        recipe = recipe_named(spec.nodes[node].image)
    except UserInputError as error:
        raise LabFileError(f"{spec.source}: nodes.{node}.image: {error}") from error
    disk = spec.nodes[node].disk
    if disk is not None and parse_mebibytes(disk) < parse_mebibytes(recipe.disk_size):
        raise LabFileError(
            f"{spec.source}: nodes.{node}.disk: {disk} is smaller than the {recipe.name} image ({recipe.disk_size})"
        )
    return recipe


def create(reference: str, options: CreateOptions, reporter: Reporter, seams: Seams) -> Ledger:
    """Every resource is in the ledger before it exists; a failure removes them all again.

    When the rollback itself meets problems, the lab's directory and ledger stay (phase
    "failed") so that `lab destroy` can finish the job; otherwise nothing is left.
    """
    spec = labfile.load(reference)
    check_fits_host(spec)
    recipes = {node.image: recipe_for(spec, node.name) for node in spec.nodes.values()}
    acceleration.choose(options.accel, why_not_kvm="")  # validates the option only
    state = LabState(spec.name)
    uri = options.connect or spec.connect or embedded_uri(state.libvirt_root)
    if embedded_root(uri) is not None:
        require_tools("qemu-system-x86_64", "qemu-img")
    state.claim()
    leftovers: list[str] = []
    try:
        ledger = Ledger(name=spec.name, uri=uri, source=spec.source, instance=uuid.uuid4().hex[:12])
        with locked_session(state, seams, ledger) as session:
            session.save()
            try:
                _create(session, spec, recipes, options, reporter)
            except BaseException:
                reporter.note(f"rolling back lab {spec.name}")
                leftovers = teardown(session)
                if leftovers:
                    ledger.phase = "failed"
                    session.save()
                raise
            return ledger
    except BaseException:
        if leftovers:
            reporter.note(f"the rollback left {'; '.join(leftovers)}: `lab destroy {spec.name}` removes the rest")
        else:
            shutil.rmtree(state.dir, ignore_errors=True)
        raise


def _create(
    session: LabSession,
    spec: LabSpec,
    recipes: dict[str, Recipe],
    options: CreateOptions,
    reporter: Reporter,
) -> None:
    started = time.monotonic()
    state, ledger = session.state, session.ledger
    chosen = acceleration.choose(options.accel)
    ledger.accel = chosen.name
    reporter.note(f"acceleration: {chosen.name} ({chosen.reason})")
    hypervisor = session.hypervisor  # an unreachable URI fails here, before anything is built or made
    images: dict[str, Image] = {}
    for name, recipe in recipes.items():
        reporter.phase("image", f"{name}: looking in the cache")
        images[name] = session.seams.image(recipe, lambda text: reporter.phase("image", text))
        reporter.done("image", f"{name} ready")
    ledger.timings["image"] = round(time.monotonic() - started, 2)

    _record_nodes(session, spec)
    write_key_pair(generate_ed25519(f"lab@{spec.name}"), state.user_key)
    for record in ledger.nodes.values():
        write_host_key(state, record)
    write_known_hosts(
        state.known_hosts,
        {r.ssh_port: read_public(Path(r.host_key)) for r in ledger.nodes.values()},
    )
    for node in spec.nodes.values():
        record = ledger.nodes[node.name]
        reporter.phase(node.name, "writing overlay and seed")
        make_overlay(images[node.image].disk, Path(record.overlay), node.disk)
        write_node_seed(state, ledger, spec, node)
        hypervisor.define(domain_spec(ledger, record, images[node.image], chosen))
    bring_up(session, list(spec.nodes), reporter, options.timeout, options.parallel, first_boot=True)
    ledger.phase = "ready"
    ledger.timings["create"] = round(time.monotonic() - started, 2)
    session.save()


def _record_nodes(session: LabSession, spec: LabSpec) -> None:
    """Choose ports and names, and write them all to the ledger before anything exists."""
    state, ledger = session.state, session.ledger
    with allocation_lock(lab_home()):
        allocator = PortAllocator(ports_in_ledgers(state_dir()))
        link_ports: dict[tuple[int, str], int] = {}
        for node in spec.nodes.values():
            for interface in node.interfaces:
                link_ports[(interface.link, node.name)] = allocator.udp()
        for node in spec.nodes.values():
            node_dir = state.node_dir(node.name)
            node_dir.mkdir(parents=True, exist_ok=True)
            ledger.nodes[node.name] = NodeRecord(
                name=node.name,
                domain=domain_name(spec.name, node.name),
                ssh_port=allocator.tcp(),
                mac=mac_address(spec.name, node.name),
                overlay=str(node_dir / "disk.qcow2"),
                seed=str(node_dir / "seed.iso"),
                console_log=str(node_dir / "console.log"),
                host_key=str(node_dir / "ssh_host_ed25519_key"),
                memory_mib=node.memory_mib,
                cpus=node.cpus,
                image=node.image,
                link_ports={
                    i.name: (link_ports[(i.link, node.name)], link_ports[(i.link, i.peer_node)])
                    for i in node.interfaces
                },
                addresses={i.name: str(i.address) for i in node.interfaces},
                containers=dict(node.containers),
            )
        ledger.links = list(spec.links)
        session.save()
