"""Seeds: rendered with StrictUndefined, written with pycdlib, read back file by file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jinja2
import pycdlib
import pytest
import yaml

from provisioner.keys import generate_ed25519
from provisioner.seed import Peer, SeedConfig, SeedInterface, read_seed_iso, render_seed, write_seed_iso
from provisioner.templating import render


@pytest.fixture(scope="module")
def config() -> SeedConfig:
    host, user = generate_ed25519("node1@demo"), generate_ed25519("lab@demo")
    return SeedConfig(
        lab="demo", node="node1", instance_id="abc-node1", user="lab",
        user_public_key=user.public_openssh, host_private_key=host.private_openssh,
        host_public_key=host.public_openssh, management_mac="52:54:00:aa:bb:01",
        interfaces=[SeedInterface("eth1", "52:54:00:aa:bb:02", "10.10.0.1/24")],
        peers=[Peer("node2", "10.10.0.2")],
        runcmd=[["resize2fs", "/dev/vda"]],
    )


def test_user_data_carries_user_keys_hostname_and_peers(config: SeedConfig) -> None:
    files = render_seed(config)
    assert files["user-data"].startswith("#cloud-config\n")
    data = yaml.safe_load(files["user-data"])
    assert data["hostname"] == "node1"
    (user,) = data["users"]
    assert user["name"] == "lab" and user["ssh_authorized_keys"] == [config.user_public_key]
    assert data["ssh_keys"]["ed25519_private"].strip() == config.host_private_key.strip()
    assert data["ssh_keys"]["ed25519_public"] == config.host_public_key
    hosts = next(f for f in data["write_files"] if f["path"] == "/etc/hosts")
    assert hosts["append"] is True and "10.10.0.2 node2" in hosts["content"]
    assert data["runcmd"] == [["resize2fs", "/dev/vda"]]


def test_network_config_matches_nics_by_mac(config: SeedConfig) -> None:
    network = yaml.safe_load(render_seed(config)["network-config"])
    assert network["version"] == 2
    eth0, eth1 = network["ethernets"]["eth0"], network["ethernets"]["eth1"]
    assert eth0["match"]["macaddress"] == "52:54:00:aa:bb:01" and eth0["addresses"] == ["10.0.2.15/24"]
    assert eth1["match"]["macaddress"] == "52:54:00:aa:bb:02" and eth1["addresses"] == ["10.10.0.1/24"]


def test_meta_data_has_a_per_instance_id(config: SeedConfig) -> None:
    meta = yaml.safe_load(render_seed(config)["meta-data"])
    assert meta == {"instance-id": "abc-node1", "local-hostname": "node1"}


def test_no_peers_means_no_hosts_entry(config: SeedConfig) -> None:
    data = yaml.safe_load(render_seed(replace(config, peers=[], runcmd=[]))["user-data"])
    assert [f["path"] for f in data["write_files"]] == ["/etc/lab/node.json"]
    assert "runcmd" not in data


def test_iso_reads_back_every_file_under_its_names(config: SeedConfig, tmp_path: Path) -> None:
    files = render_seed(config)
    iso_path = tmp_path / "seed.iso"
    write_seed_iso(files, iso_path)
    assert read_seed_iso(iso_path) == files
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        joliet = sorted(child.file_identifier().decode("utf-16_be") for child in iso.list_children(joliet_path="/")
                        if child.is_file())
        assert joliet == ["meta-data", "network-config", "user-data"]
    finally:
        iso.close()


def test_a_missing_template_variable_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("meta-data.j2", node="n1")
