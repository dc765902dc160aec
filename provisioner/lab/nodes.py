"""Everything one node needs on disk before it boots: keys, overlay, seed, domain XML."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..errors import HypervisorError
from ..hypervisor.accel import Acceleration
from ..hypervisor.domain import DomainSpec, LinkPort
from ..images.store import Image
from ..keys import generate_ed25519, read_public, write_key_pair
from ..labfile import LabSpec, Node
from ..seed import Peer, SeedConfig, SeedInterface, render_seed, write_seed_iso
from ..state import LabState, Ledger, NodeRecord


def domain_name(lab: str, node: str) -> str:
    return f"lab-{lab}-{node}"


DISK_SIZE = re.compile(r"[1-9][0-9]*M")  # labfile's canonical form (specvalues.disk_size)


def make_overlay(base: Path, overlay: Path, size: str | None) -> None:
    """SIZE reaches qemu-img's argv, where a word such as -Fraw would be read as an option."""
    command = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)]
    if size:
        if not DISK_SIZE.fullmatch(size):
            raise HypervisorError(f"{overlay}: {size!r} is not a disk size in MiB")
        command.append(size)
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        raise HypervisorError(f"qemu-img could not be run for {overlay}: {error.strerror or error}") from error
    if done.returncode != 0:
        raise HypervisorError(f"qemu-img could not create {overlay}: {done.stderr.strip()}")


def write_host_key(state: LabState, record: NodeRecord) -> None:
    write_key_pair(generate_ed25519(f"{record.name}@{state.name}"), Path(record.host_key))


def write_node_seed(state: LabState, ledger: Ledger, spec: LabSpec, node: Node) -> None:
    record = ledger.nodes[node.name]
    host_key = Path(record.host_key)
    interfaces = [
        SeedInterface(i.name, link_mac(record, i.name), str(i.address)) for i in node.interfaces
    ]
    peers = [Peer(i.peer_node, str(i.peer_address.ip)) for i in node.interfaces]
    runcmd = [["resize2fs", "/dev/vda"]] if node.disk else []
    config = SeedConfig(
        lab=spec.name,
        node=node.name,
        instance_id=f"{ledger.instance}-{node.name}",
        user=ledger.user,
        user_public_key=read_public(state.user_key),
        host_private_key=host_key.read_text(),
        host_public_key=read_public(host_key),
        management_mac=record.mac,
        interfaces=interfaces,
        peers=peers,
        runcmd=runcmd,
    )
    write_seed_iso(render_seed(config), Path(record.seed))


def link_mac(record: NodeRecord, ifname: str) -> str:
    """Link MACs follow from the management MAC, so they are deterministic per node."""
    index = int(ifname.removeprefix("eth"))
    prefix, last = record.mac.rsplit(":", 1)
    return f"{prefix}:{(int(last, 16) + index) % 256:02x}"


def domain_spec(ledger: Ledger, record: NodeRecord, image: Image, accel: Acceleration) -> DomainSpec:
    links = [
        LinkPort(link_mac(record, ifname), local, remote)
        for ifname, (local, remote) in sorted(record.link_ports.items())
    ]
    return DomainSpec(
        name=record.domain,
        lab=ledger.name,
        node=record.name,
        memory_mib=record.memory_mib,
        cpus=record.cpus,
        accel=accel,
        kernel=image.kernel_path,
        initrd=image.initrd_path,
        cmdline=" ".join(image.kernel_args),
        overlay=Path(record.overlay),
        seed=Path(record.seed),
        console_log=Path(record.console_log),
        ssh_port=record.ssh_port,
        management_mac=record.mac,
        links=links,
    )
