"""The host's start of a lab file's containers against the real engine API (crun, network and
mounts faked): the two-node lab's web container runs with its limits, and a second start is
refused by name, as `labctl run` was."""

from __future__ import annotations

import dataclasses
import socket

import pytest
from labagent.client import Client

from provisioner import labfile
from provisioner.errors import BootError
from provisioner.lab.engine import start_containers
from tests.unit.host.fakes import SocketChannel


class EngineShell:
    """A NodeShell whose channels reach the engine's socket directly, as the node's socat does."""

    node = "node1"

    def __init__(self, path: str) -> None:
        self.path = path

    def channel(self, command: str) -> SocketChannel:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        return SocketChannel(sock)


def test_the_two_node_labs_container_runs_with_its_memory_and_port(client: Client) -> None:
    web = labfile.load("two-node").nodes["node1"].containers["web"]
    web = dataclasses.replace(web, command=["sh", "-c", "sleep 30"])  # the fake busybox has no httpd
    start_containers(EngineShell(client.path), {"web": web})  # type: ignore[arg-type]
    info = client.json("GET", "/containers/web/json")
    assert info["State"]["Running"] is True
    assert info["HostConfig"]["Memory"] == 64 * 2**20
    assert info["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert info["Config"]["Cmd"] == ["sh", "-c", "sleep 30"]
    with pytest.raises(BootError, match=r'^node node1: container web did not start: .*"/web" is already in use'):
        start_containers(EngineShell(client.path), {"web": web})  # type: ignore[arg-type]


def test_what_the_engine_refuses_at_start_is_the_boot_error(client: Client) -> None:
    containers = labfile.load("two-node").nodes["node1"].containers
    with pytest.raises(BootError, match=r"^node node1: container web did not start: executable file `httpd` not found"):
        start_containers(EngineShell(client.path), containers)  # type: ignore[arg-type]
