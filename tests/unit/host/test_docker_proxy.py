"""The docker-env proxy's failures are HTTP errors, and its bridge ends when the engine does.

The first tests fake the node's side (a channel that cannot be opened, one that ends with no
answer, connections that refuse channels). The rest run the real chain the guest runs: OpenSSH's
sshd, the bridge command's sudo and socat, and the engine server (fake seams) on a unix socket,
with docker-py on the proxy's socket: a hijacked exec stream ends without any half-close from
the client, and channels refused by MaxSessions open another connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner import docker as proxy_mod
from provisioner.engineapi import bridge_command
from provisioner.errors import NodeUnreachable
from provisioner.remote import ssh
from provisioner.remote.seam import Channel, NodeShell
from tests.unit.agent.dockerhost import EngineProcess, start_engine
from tests.unit.test_docker_host import SocketChannel

from .openssh import missing, openssh

docker = pytest.importorskip("docker")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Callable[[], Channel]], proxy_mod.SocketProxy]]:
    proxies: list[proxy_mod.SocketProxy] = []

    def start(open_channel: Callable[[], Channel]) -> proxy_mod.SocketProxy:
        proxy = proxy_mod.SocketProxy(tmp_path / f"p{len(proxies)}" / "docker.sock", open_channel)
        threading.Thread(target=proxy.serve, daemon=True).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


def ask(proxy: proxy_mod.SocketProxy, data: bytes = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    """Send one request; everything up to the proxy's end of file (a reset raises)."""
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(20)
    client.connect(str(proxy.path))
    client.sendall(data)
    got = b""
    while chunk := client.recv(65536):
        got += chunk
    client.close()
    return got


def finishes(work: Callable[[], None], limit: float = 120.0) -> None:
    """Run WORK, failing (not hanging) if it never ends: docker-py reads a hijacked stream with
    no timeout, so a stream whose end never comes would otherwise hang the suite."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # re-raised in the test's thread
            failure.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still waiting after {limit:g} s: a stream's end never came"
    if failure:
        raise failure[0]


def status_and_message(reply: bytes) -> tuple[int, str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"Content-Type: application/json" in head
    return int(head.split()[1]), str(json.loads(body)["message"])


def test_a_channel_that_cannot_be_opened_is_a_502(serve: Any) -> None:
    def refused() -> Channel:
        raise NodeUnreachable("node node1: no SSH channel: ChannelException(1, 'Administratively prohibited')")

    proxy = serve(refused)
    status, message = status_and_message(ask(proxy))
    assert status == 502 and "could not open an SSH channel" in message and "prohibited" in message
    client = docker.APIClient(base_url=f"unix://{proxy.path}", version="1.43", timeout=20)
    with pytest.raises(docker.errors.APIError) as error:
        client.version()
    assert error.value.status_code == 502 and "SSH channel" in str(error.value.explanation)


def test_a_bridge_that_ends_without_an_answer_is_a_502(serve: Any) -> None:
    def dead_end() -> Channel:
        ours, theirs = socket.socketpair()
        theirs.close()  # sudo refused, socat missing, the engine down: the command just ends
        return SocketChannel(ours)

    status, message = status_and_message(ask(serve(dead_end)))
    assert status == 502 and "no answer from the engine" in message


def test_an_answer_then_the_end_is_passed_on_as_it_is(serve: Any) -> None:
    def answering() -> Channel:
        ours, theirs = socket.socketpair()

        def engine() -> None:
            theirs.recv(65536)
            theirs.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\nraw stream")
            theirs.close()

        threading.Thread(target=engine, daemon=True).start()
        return SocketChannel(ours)

    assert ask(serve(answering)) == b"HTTP/1.1 101 UPGRADED\r\n\r\nraw stream"  # no 502 appended


class Refusing:
    """A NodeShell whose connection has room for `room` channels."""

    def __init__(self, room: int) -> None:
        self.room, self.closed, self.node = room, False, "node1"

    def channel(self, command: str) -> Channel:
        if self.room <= 0:
            raise NodeUnreachable("node node1: no SSH channel: ChannelException(1, 'Administratively prohibited')")
        self.room -= 1
        return SocketChannel(socket.socketpair()[0])

    def close(self) -> None:
        self.closed = True


def test_refused_channels_open_another_connection_up_to_a_bound() -> None:
    first, made = Refusing(2), []

    def connect() -> NodeShell:
        made.append(Refusing(2))
        return made[-1]  # type: ignore[return-value]

    opener = proxy_mod.ChannelOpener(first, connect, most=3)  # type: ignore[arg-type]
    for _ in range(6):
        opener()
    assert len(made) == 2 and first.room == 0 and [s.room for s in made] == [0, 0]
    with pytest.raises(NodeUnreachable):
        opener()  # three connections, all full
    opener.close()
    assert all(s.closed for s in made) and not first.closed  # the first belongs to the caller


# the real chain: OpenSSH, sudo, socat, the engine -------------------------------------------
real = pytest.mark.skipif(missing() is not None, reason=str(missing()))


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("proxied"))
    yield engine
    engine.stop()


@pytest.fixture
def through_ssh(tmp_path: Path, eng: EngineProcess, serve: Any) -> Iterator[Callable[..., Any]]:
    """A proxy to the engine over a real sshd with MaxSessions as given; its opener."""
    opened: list[tuple[Any, list[NodeShell]]] = []

    def start(max_sessions: int = 10, reconnect: bool = True) -> tuple[proxy_mod.SocketProxy, Any]:
        endpoint = stack.enter_context(openssh(tmp_path / f"sshd{len(opened)}", max_sessions))
        shells: list[NodeShell] = [ssh.connect(endpoint)]

        def connect() -> NodeShell:
            shells.append(ssh.connect(endpoint))
            return shells[-1]

        opener = proxy_mod.ChannelOpener(shells[0], connect if reconnect else None,
                                         command=bridge_command(86400, socket_path=str(eng.socket)))
        opened.append((opener, shells))
        return serve(opener), opener

    with contextlib.ExitStack() as stack:
        yield start
        for opener, shells in opened:
            opener.close()
            shells[0].close()


@real
def test_the_issues_docker_py_sequence_through_openssh(through_ssh: Any) -> None:
    """exec_run ends (docker-py never half-closes); stop, wait, remove; the same client again; a fresh one."""
    proxy, _ = through_ssh()
    finishes(lambda: sequence(f"unix://{proxy.path}"))


def sequence(host: str) -> None:
    client = docker.DockerClient(base_url=host, version="1.43", timeout=20)
    for round in range(2):
        ctr = client.containers.run("busybox", ["sleep", "30"], detach=True, name=f"ssh{round}")
        result = ctr.exec_run(["sh", "-c", "echo through ssh; exit 4"])
        assert (result.exit_code, result.output) == (4, b"through ssh\n")
        ctr.stop(timeout=1)
        assert ctr.wait(timeout=10)["StatusCode"] in (137, 143)
        ctr.remove()
        assert client.version()["ApiVersion"] == "1.43"
    assert client.containers.run("busybox", ["echo", "gone after"], remove=True) == b"gone after\n"
    assert client.containers.list(all=True) == []
    client.close()
    fresh = docker.DockerClient(base_url=host, version="1.43", timeout=20)
    assert fresh.version()["ApiVersion"] == "1.43"
    fresh.close()


@real
@pytest.mark.parametrize("upgrade", [True, False], ids=["upgrade", "plain"])
def test_a_hijacked_streams_end_reaches_the_client(through_ssh: Any, eng: EngineProcess, upgrade: bool) -> None:
    proxy, _ = through_ssh()
    api = docker.APIClient(base_url=f"unix://{proxy.path}", version="1.43", timeout=20)
    cid = api.create_container("busybox", ["sleep", "30"], name=f"hj-{upgrade}")["Id"]
    api.start(cid)
    eid = api.exec_create(cid, ["echo", "hijacked"])["Id"]
    body = b'{"Detach": false, "Tty": false}'
    extra = b"Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else b""
    reply = ask(proxy, b"POST /v1.43/exec/%s/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"%sContent-Length: %d\r\n\r\n%s" % (eid.encode(), extra, len(body), body))
    head, _, stream = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101" if upgrade else b"HTTP/1.1 200")
    assert stream == b"\x01\x00\x00\x00\x00\x00\x00\x09hijacked\n"
    api.remove_container(cid, force=True)
    api.close()


@real
def test_channels_refused_by_max_sessions_go_over_another_connection(through_ssh: Any) -> None:
    proxy, opener = through_ssh(max_sessions=2)
    clients = []
    for _ in range(5):  # kept-alive connections, each holding its channel open
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(20)
        client.connect(str(proxy.path))
        client.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(65536).endswith(b"\r\n\r\nOK")
        clients.append(client)
    assert len(opener._shells) == 3
    for client in clients:
        client.close()


@real
def test_without_another_connection_a_refused_channel_is_a_502(through_ssh: Any) -> None:
    proxy, _ = through_ssh(max_sessions=1, reconnect=False)
    held = socket.socket(socket.AF_UNIX)
    held.settimeout(20)
    held.connect(str(proxy.path))
    held.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert held.recv(65536).endswith(b"OK")
    status, message = status_and_message(ask(proxy))
    assert status == 502 and "SSH channel" in message
    held.close()
