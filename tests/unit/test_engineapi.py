"""The engine API from the host over a node's shell: one request per bridge channel, JSON bodies,
errors that name the node (and, for the lab file's containers, the container)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from labagent.contract import API_VERSION, SOCKET, ContainerSpec

from provisioner import engineapi
from provisioner.errors import BootError, EngineApiError
from provisioner.lab.engine import start_containers
from provisioner.remote.seam import Endpoint
from tests.unit.host.fakes import CONTAINER_ID, FakeNodes, FakeShell, SocketChannel

WEB = ContainerSpec(image="busybox", command=["httpd", "-f", "-p", "80"], publish=["8080:80"], memory="64M")


def shell_on(nodes: FakeNodes, node: str = "node1") -> FakeShell:
    return nodes.connect(Endpoint(node, 40001, "lab", Path("k"), Path("kh")))


def test_the_bridge_is_socat_to_the_contracts_socket_as_root() -> None:
    expected = (f"exec socat -t 5 -T 300 -,shut-close 'EXEC:sudo -n socat -t 5 -T 300 "
                f"-\\,shut-down UNIX-CONNECT\\:{SOCKET}' 2>/dev/null")
    assert expected == engineapi.REQUEST_BRIDGE


def test_a_request_is_versioned_http_with_a_json_body() -> None:
    data = engineapi.encode("POST", "/containers/create", {"name": "web; rm -rf ~"}, {"Image": "busybox"})
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == f"POST /v{API_VERSION}/containers/create?name=web%3B+rm+-rf+~ HTTP/1.1"
    assert set(lines[1:]) == {"Host: localhost", "Connection: close", f"Content-Length: {len(body)}",
                              "Content-Type: application/json"}
    assert json.loads(body) == {"Image": "busybox"}


def test_a_reply_is_decoded_and_each_request_has_its_own_channel() -> None:
    nodes = FakeNodes()
    shell = shell_on(nodes)
    nodes.engine.reply("GET", "/containers/web/json", (200, {"Name": "/web"}))
    assert engineapi.request(shell, "GET", "/containers/web/json") == engineapi.Reply(200, {"Name": "/web"})
    assert engineapi.request(shell, "POST", "/containers/x/start") == engineapi.Reply(204, None)
    assert nodes.commands["node1"] == [f"channel {engineapi.REQUEST_BRIDGE}"] * 2
    assert nodes.channels == []  # the fake engine served them: no raw channel left over


def test_an_error_reply_names_the_node_the_request_and_what_the_engine_said() -> None:
    nodes = FakeNodes()
    nodes.engine.reply("POST", "/containers/create", (409, {"message": 'Conflict. The name "/web" is in use'}))
    refused = r'^node node1: POST /containers/create: 409 Conflict. The name "/web"'
    with pytest.raises(EngineApiError, match=refused) as info:
        engineapi.request(shell_on(nodes), "POST", "/containers/create", {"name": "web"}, {"Image": "busybox"})
    assert (info.value.status, info.value.reason) == (409, 'Conflict. The name "/web" is in use')


class SilentShell:
    """A node whose bridge ends without a word (sudo refused, socat missing, the socket gone)."""

    node = "node1"

    def __init__(self) -> None:
        self.channels: list[SocketChannel] = []
        self.received = b""

    def channel(self, command: str) -> SocketChannel:
        ours, theirs = socket.socketpair()

        def hang_up() -> None:
            while chunk := theirs.recv(65536):
                self.received += chunk
                if b"\r\n\r\n" in self.received:
                    break
            theirs.close()

        threading.Thread(target=hang_up, daemon=True).start()
        self.channels.append(SocketChannel(ours))
        return self.channels[-1]


def test_no_answer_is_an_engine_api_error_and_the_channel_is_closed() -> None:
    shell = SilentShell()
    with pytest.raises(EngineApiError, match=r"^node node1: GET /_ping: no answer from the engine \(") as info:
        engineapi.request(shell, "GET", "/_ping")  # type: ignore[arg-type]
    assert info.value.status == 0
    assert shell.received.startswith(b"GET /v")
    (channel,) = shell.channels
    assert channel.sock.fileno() == -1  # closed


def test_lab_file_containers_are_created_then_started_in_order() -> None:
    nodes = FakeNodes()
    start_containers(shell_on(nodes), {"web": WEB, "db": ContainerSpec(image="busybox", env={"A": "1"})})
    calls = [(call.method, call.path, call.query) for call in nodes.engine.calls]
    assert calls == [
        ("POST", "/containers/create", {"name": "web"}), ("POST", f"/containers/{CONTAINER_ID}/start", {}),
        ("POST", "/containers/create", {"name": "db"}), ("POST", f"/containers/{CONTAINER_ID}/start", {}),
    ]
    assert nodes.engine.calls[0].body["HostConfig"]["Memory"] == 64 << 20
    assert nodes.engine.calls[2].body["Env"] == ["A=1"]


def test_a_container_that_exists_already_fails_the_start_naming_node_and_container() -> None:
    """As `labctl run --name` did: the engine's 409, and the containers after it are not tried."""
    nodes = FakeNodes()
    nodes.engine.reply("POST", "/containers/create", (409, {"message": 'Conflict. The container name "/web" is '
                                                                       "already in use"}))
    with pytest.raises(BootError, match=r'^node node1: container web did not start: Conflict. The container '
                                        r'name "/web" is already in use$'):
        start_containers(shell_on(nodes), {"web": WEB, "db": WEB})
    assert [call.query for call in nodes.engine.calls] == [{"name": "web"}]


def test_a_failed_start_names_the_container() -> None:
    nodes = FakeNodes()
    nodes.engine.reply("POST", "/containers/[^/]+/start", (500, {"message": "crun: exec: httpd: not found"}))
    with pytest.raises(BootError, match=r"^node node1: container web did not start: crun: exec: httpd: not found$"):
        start_containers(shell_on(nodes), {"web": WEB})


def test_a_create_reply_without_an_id_is_a_boot_error() -> None:
    nodes = FakeNodes()
    nodes.engine.reply("POST", "/containers/create", (201, {"Warnings": []}))
    with pytest.raises(BootError, match="^node node1: container web did not start: the engine's create reply has no"):
        start_containers(shell_on(nodes), {"web": WEB})


def test_an_edited_ledgers_bad_value_fails_before_any_request() -> None:
    nodes = FakeNodes()
    with pytest.raises(BootError, match="^node node1: container web did not start: 'x' is not a port publication"):
        start_containers(shell_on(nodes), {"web": ContainerSpec(image="busybox", publish=["x"])})
    assert nodes.engine.calls == []


def test_the_request_carries_hostile_values_as_json_strings() -> None:
    """What a shell line had to quote is data in a JSON body: it reaches the engine as it is."""
    hostile = ContainerSpec(image="busybox$(touch /tmp/pwned)", env={"A": "'\"$(touch /tmp/pwned)"},
                            command=["sh", "-c", "`touch /tmp/pwned`", "; rm -rf ~"])
    nodes = FakeNodes()
    start_containers(shell_on(nodes), {"web": hostile})
    body: Any = nodes.engine.calls[0].body
    assert body["Image"] == hostile.image and body["Cmd"] == hostile.command
    assert body["Env"] == ["A='\"$(touch /tmp/pwned)"]
