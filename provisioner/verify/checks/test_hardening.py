"""Containers cannot mount, load modules, touch raw devices or rename the node."""

from __future__ import annotations

from collections.abc import Callable

import testinfra.host

from ..plugin import Probes

ContainerHost = Callable[[str, str], testinfra.host.Host]


def test_hardening_mount_is_denied(probes: Probes, container_host: ContainerHost) -> None:
    result = container_host(probes.node, probes.first).run("mkdir -p /mnt/x && mount -t tmpfs none /mnt/x")
    assert result.rc != 0, "a container mounted a tmpfs"


def test_hardening_module_loading_is_denied(probes: Probes, container_host: ContainerHost) -> None:
    result = container_host(probes.node, probes.first).run("insmod /bin/busybox")
    assert result.rc != 0 and "not permitted" in result.stdout + result.stderr, (
        f"init_module was not refused with EPERM: {result.stdout}{result.stderr}"
    )


def test_hardening_raw_devices_are_denied(probes: Probes, container_host: ContainerHost) -> None:
    host = container_host(probes.node, probes.first)
    assert not host.file("/dev/vda").exists, "the node's disk appears in the container"
    result = host.run("mknod /tmp/rawdisk b 254 0 2>&1; head -c 1 /tmp/rawdisk")
    assert result.rc != 0, "the container read the node's raw disk"


def test_hardening_the_nodes_hostname_cannot_be_changed(probes: Probes, container_host: ContainerHost) -> None:
    before = probes.host.check_output("hostname")
    result = container_host(probes.node, probes.first).run("hostname lab-verify-renamed")
    assert result.rc != 0, "sethostname succeeded inside the container"
    assert probes.host.check_output("hostname") == before
