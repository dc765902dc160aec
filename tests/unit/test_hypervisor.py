"""Domain XML, acceleration choice, and libvirt's test driver for the lifecycle."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from provisioner.errors import HypervisorError, UnreachableHypervisorError, UserInputError
from provisioner.hypervisor import accel
from provisioner.hypervisor.connection import embedded_root, open_connection, prepare_embedded_root
from provisioner.hypervisor.domain import DomainSpec, LinkPort
from provisioner.hypervisor.libvirt_domains import LibvirtDomains, open_libvirt

QEMU_NS = "{http://libvirt.org/schemas/domain/qemu/1.0}"


def spec(acceleration: accel.Acceleration = accel.TCG, **changes: object) -> DomainSpec:
    values: dict[str, object] = dict(
        name="lab-demo-node1", lab="demo", node="node1", memory_mib=512, cpus=1, accel=acceleration,
        kernel=Path("/img/vmlinux"), initrd=Path("/img/initrd"), cmdline="root=LABEL=rootfs quiet",
        overlay=Path("/s/node1/disk.qcow2"), seed=Path("/s/node1/seed.iso"),
        console_log=Path("/s/node1/console.log"), ssh_port=40022, management_mac="52:54:00:00:00:01",
        links=[LinkPort("52:54:00:00:00:02", 41001, 41002)],
    )
    values.update(changes)
    return DomainSpec(**values)  # type: ignore[arg-type]


def test_tcg_domain_boots_the_kernel_directly_with_a_sized_translation_cache() -> None:
    root = ET.fromstring(spec().to_xml())
    assert root.get("type") == "qemu"
    assert root.findtext("os/kernel") == "/img/vmlinux"
    assert root.findtext("os/initrd") == "/img/initrd"
    assert root.findtext("os/cmdline") == "root=LABEL=rootfs quiet"
    assert root.find("features/tcg/tb-cache").text == "128"  # type: ignore[union-attr]
    assert root.find("cpu/model").text == "qemu64"  # type: ignore[union-attr]
    assert root.find("devices/video/model").get("type") == "none"  # type: ignore[union-attr]
    assert root.findtext("memory") == "512"


def test_disks_serial_and_udp_links() -> None:
    root = ET.fromstring(spec().to_xml())
    disks = root.findall("devices/disk")
    assert [d.find("source").get("file") for d in disks] == ["/s/node1/disk.qcow2", "/s/node1/seed.iso"]  # type: ignore[union-attr]
    assert disks[1].find("readonly") is not None
    assert root.find("devices/serial/source").get("path") == "/s/node1/console.log"  # type: ignore[union-attr]
    (link,) = root.findall("devices/interface")
    assert link.get("type") == "udp"
    source = link.find("source")
    assert source is not None and (source.get("address"), source.get("port")) == ("127.0.0.1", "41002")
    local = source.find("local")
    assert local is not None and (local.get("address"), local.get("port")) == ("127.0.0.1", "41001")


def test_user_networking_is_restricted_and_forwards_only_loopback_ssh() -> None:
    root = ET.fromstring(spec().to_xml())
    args = [arg.get("value") for arg in root.iter(f"{QEMU_NS}arg")]
    netdev = args[args.index("-netdev") + 1]
    assert "restrict=on" in netdev
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev
    assert "mac=52:54:00:00:00:01" in args[args.index("-device") + 1]


def test_kvm_domain_has_no_tcg_cache() -> None:
    root = ET.fromstring(spec(accel.KVM).to_xml())
    assert root.get("type") == "kvm" and root.find("features/tcg") is None


def test_kvm_is_not_trusted_without_vmx_or_svm(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.write_text("")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 hypervisor\n")
    assert "no vmx/svm" in accel.kvm_usable(cpuinfo, device)
    cpuinfo.write_text("flags\t\t: fpu vmx sse2\n")
    assert accel.kvm_usable(cpuinfo, device) == ""
    assert "does not exist" in accel.kvm_usable(cpuinfo, tmp_path / "missing")


def test_choose_reports_why_and_honours_forcing() -> None:
    chosen = accel.choose("auto", why_not_kvm="no vmx")
    assert chosen.name == "tcg" and "no vmx" in chosen.reason
    assert accel.choose("auto", why_not_kvm="").name == "kvm"
    assert accel.choose("kvm", why_not_kvm="no vmx").name == "kvm"
    assert accel.choose("tcg", why_not_kvm="").name == "tcg"
    with pytest.raises(UserInputError):
        accel.choose("xen")


def test_embedded_root_is_parsed_and_checked(tmp_path: Path, private_lab_home: Path) -> None:
    assert embedded_root("qemu:///embed?root=/tmp/x/libvirt") == Path("/tmp/x/libvirt")
    assert embedded_root("qemu:///system") is None
    with pytest.raises(UserInputError, match="too long"):
        prepare_embedded_root(tmp_path / ("x" * 80))
    prepare_embedded_root(private_lab_home / "lv")
    assert 'stdio_handler = "file"' in (private_lab_home / "lv/etc/qemu.conf").read_text()


def test_unreachable_uri_is_a_user_error() -> None:
    with pytest.raises(UnreachableHypervisorError, match="cannot open libvirt at"):
        open_connection("qemu+ssh://nobody@127.0.0.1:1/system?no_tty=1&no_verify=1")


def test_lifecycle_against_libvirts_test_driver() -> None:
    connection = libvirt.open("test:///default")
    domains = LibvirtDomains(connection)
    xml = """<domain type='test'><name>lab-unit-n1</name><memory unit='MiB'>64</memory>
             <os><type>hvm</type></os></domain>"""
    connection.defineXML(xml)
    try:
        assert domains.state("lab-unit-n1") == "stopped"
        assert "lab-unit-n1" in domains.names()
        domains.start("lab-unit-n1")
        assert domains.state("lab-unit-n1") == "running"
        dead = LibvirtDomains(connection, process_alive=lambda name: False)
        assert dead.state("lab-unit-n1") == "dead"
        domains.remove("lab-unit-n1")
        assert domains.state("lab-unit-n1") == "missing"
        assert "lab-unit-n1" not in domains.names()
        domains.remove("lab-unit-n1")  # removing twice is fine
    finally:
        connection.close()


def test_libvirt_failures_are_hypervisor_errors_with_libvirts_cause() -> None:
    domains = open_libvirt("test:///default", lambda name: None)
    try:
        with pytest.raises(HypervisorError, match="domain lab-unit-none is not defined"):
            domains.start("lab-unit-none")
        bad = spec(name="test", node="n1")  # test:///default already has a domain "test" (another UUID)
        with pytest.raises(HypervisorError, match="node n1: libvirt rejected its domain") as failure:
            domains.define(bad)
        assert isinstance(failure.value.__cause__, libvirt.libvirtError)
    finally:
        domains.close()


def test_a_remote_uri_trusts_libvirt_and_a_local_one_checks_the_process() -> None:
    remote = open_libvirt("test:///default", lambda name: "/no/such/overlay")
    try:
        assert remote.process_alive is None and remote.state("test") == "running"
    finally:
        remote.close()
