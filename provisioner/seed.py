"""cloud-init NoCloud seeds: user-data, meta-data and network-config on an ISO labelled cidata."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pycdlib

from .templating import render

# (ISO 9660 name, Rock Ridge and Joliet name)
SEED_FILES = (
    ("USERDATA.;1", "user-data"),
    ("METADATA.;1", "meta-data"),
    ("NETCONF.;1", "network-config"),
)


@dataclass(frozen=True)
class SeedInterface:
    name: str
    mac: str
    address: str


@dataclass(frozen=True)
class Peer:
    node: str
    address: str


@dataclass(frozen=True)
class SeedConfig:
    """Everything a node's first boot needs to know."""

    lab: str
    node: str
    instance_id: str
    user: str
    user_public_key: str
    host_private_key: str
    host_public_key: str
    management_mac: str
    interfaces: list[SeedInterface] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    runcmd: list[list[str]] = field(default_factory=list)


def render_seed(config: SeedConfig) -> dict[str, str]:
    context = vars(config)
    return {
        "user-data": render("user-data.j2", **context),
        "meta-data": render("meta-data.j2", **context),
        "network-config": render("network-config.j2", **context),
    }


def write_seed_iso(files: dict[str, str], path: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for iso_name, name in SEED_FILES:
        data = files[name].encode()
        iso.add_fp(io.BytesIO(data), len(data), f"/{iso_name}", rr_name=name, joliet_path=f"/{name}")
    temporary = path.with_suffix(".tmp")
    iso.write(str(temporary))
    iso.close()
    temporary.rename(path)


def read_seed_iso(path: Path) -> dict[str, str]:
    """Read every file back by its Rock Ridge name, as cloud-init's mount would see it."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        files = {}
        for _, name in SEED_FILES:
            buffer = io.BytesIO()
            iso.get_file_from_iso_fp(buffer, rr_path=f"/{name}")
            files[name] = buffer.getvalue().decode()
        return files
    finally:
        iso.close()
