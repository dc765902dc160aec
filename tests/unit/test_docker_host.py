"""The host side of `lab docker`: the stdio bridge, the unix-socket proxy and the commands.

SSH itself is faked: a "channel" here is a socket to the fake engine, which is what the
guest's `socat - UNIX-CONNECT:engine.sock` gives a real SSH channel.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from labagent import contract

from provisioner import agent, cli_docker, docker
from provisioner.errors import UserInputError
from provisioner.remote.seam import Endpoint
from provisioner.state import LabState, Ledger, NodeRecord
from provisioner.templating import render
from tests.unit.agent.dockerhost import DOCKER, EngineProcess, start_engine
from tests.unit.host.conftest import seams_for
from tests.unit.host.fakes import FakeHypervisor, FakeNodes


def shim_file() -> Path:
    """The node's docker shim, rendered as the agent's install writes it."""
    path = Path(tempfile.mkdtemp(prefix="lab-shim-")) / "docker"
    path.write_text(render("docker.sh.j2", **agent.CONTRACT))
    return path


SHIM = shim_file()


class SocketChannel:
    """A paramiko-Channel look-alike over a connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def send(self, data: bytes) -> int:
        return self.sock.send(data)

    def recv(self, nbytes: int) -> bytes:
        return self.sock.recv(nbytes)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class ShimChannel:
    """The guest shim (`docker system dial-stdio` -> socat) as a subprocess, like an SSH exec channel."""

    def __init__(self, eng: EngineProcess) -> None:
        env = {**os.environ, contract.SOCKET_ENV: str(eng.socket)}
        self.proc = subprocess.Popen(["sh", str(SHIM), "system", "dial-stdio"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)

    def send(self, data: bytes) -> int:
        assert self.proc.stdin
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        return len(data)

    def recv(self, nbytes: int) -> bytes:
        assert self.proc.stdout
        return os.read(self.proc.stdout.fileno(), nbytes)

    def shutdown_write(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def engine_channel(eng: EngineProcess) -> SocketChannel:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(eng.socket))
    return SocketChannel(sock)


def bridged() -> tuple[socket.socket, socket.socket, SocketChannel, threading.Thread]:
    """A client socket bridged to a far end through a channel, as `lab docker-env` does."""
    client, local = socket.socketpair()
    remote, far = socket.socketpair()
    channel = SocketChannel(remote)
    thread = threading.Thread(target=docker.bridge, args=(local, channel), daemon=True)
    thread.start()
    return client, far, channel, thread


def test_bridge_carries_both_ways_and_passes_the_half_close_on() -> None:
    client, far, channel, thread = bridged()
    client.sendall(b"request")
    client.shutdown(socket.SHUT_WR)  # the docker CLI does this after a hijack
    far.settimeout(5)
    got = b""
    while chunk := far.recv(100):
        got += chunk
    assert got == b"request"  # ... and the far end saw end-of-file
    far.sendall(b"answer after the half-close")
    far.close()
    client.settimeout(5)
    reply = b""
    while chunk := client.recv(100):
        reply += chunk
    assert reply == b"answer after the half-close"
    thread.join(5)
    assert not thread.is_alive() and channel.closed


def test_bridge_closes_the_channel_when_the_client_dies() -> None:
    client, far, channel, thread = bridged()
    far.sendall(b"streaming")
    client.settimeout(5)
    assert client.recv(100) == b"streaming"
    client.close()
    for _ in range(50):  # the next write to the dead client fails and ends the bridge
        try:
            far.sendall(b"more")
        except OSError:
            break
        thread.join(0.1)
        if not thread.is_alive():
            break
    thread.join(5)
    assert not thread.is_alive() and channel.closed


def test_proxy_socket_is_private(tmp_path: Path) -> None:
    proxy = docker.SocketProxy(tmp_path / "p" / "engine.sock", lambda: pytest.fail("no connection"))
    try:
        assert (proxy.path.stat().st_mode & 0o777) == 0o600
        assert (proxy.path.parent.stat().st_mode & 0o777) == 0o700
    finally:
        proxy.close()
    assert not proxy.path.exists()


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
@pytest.mark.parametrize("via", ["socket", "shim"])
def test_real_docker_cli_through_the_proxy(tmp_path: Path, via: str) -> None:
    if via == "shim" and (shutil.which("socat") is None or os.getuid() != 0):
        pytest.skip("the guest shim needs socat (and root, as in the guest)")
    eng = start_engine(tmp_path / "engine")
    channel: Any = engine_channel if via == "socket" else ShimChannel
    proxy = docker.SocketProxy(tmp_path / "proxy" / "engine.sock", lambda: channel(eng))
    threading.Thread(target=proxy.serve, daemon=True).start()
    env = {**eng.env(), "DOCKER_HOST": f"unix://{proxy.path}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        assert DOCKER
        return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=30, check=False)

    try:
        assert run("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.43"
        fg = run("run", "--name", "fg", "busybox", "sh", "-c", "echo through the proxy; exit 7")
        assert (fg.returncode, fg.stdout) == (7, "through the proxy\n")
        run("run", "-d", "--name", "bg", "busybox", "sleep", "30")
        ex = run("exec", "bg", "sh", "-c", "echo in; exit 3")
        assert (ex.returncode, ex.stdout) == (3, "in\n")
        assert "bg" in run("ps", "--format", "{{.Names}}").stdout
        assert run("rm", "-f", "bg", "fg").returncode == 0
    finally:
        proxy.close()
        eng.stop()


def test_the_proxy_bridges_each_client_over_the_nodes_one_connection() -> None:
    nodes = FakeNodes()
    shell = nodes.connect(Endpoint("n1", 40111, "lab", Path("k"), Path("kh")))
    with docker.proxied(shell) as host:
        for request in (b"GET /_ping", b"GET /version"):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(host.removeprefix("unix://"))
            client.sendall(request)
            for _ in range(50):
                if len(nodes.channels) == (1 if request.endswith(b"ping") else 2):
                    break
                time.sleep(0.1)
            engine = nodes.channels[-1][1]
            engine.settimeout(5)
            assert engine.recv(100) == request
            engine.sendall(b"HTTP/1.1 200 OK\r\n\r\nOK")
            engine.close()
            client.settimeout(5)
            assert client.recv(100).endswith(b"OK")
            client.close()
    assert [command for command, _ in nodes.channels] == [docker.BRIDGE_COMMAND] * 2
    assert docker.BRIDGE_COMMAND == ("exec socat -t 86400 -,shut-close 'EXEC:sudo -n socat -t 86400 -\\,shut-down "
                                     "UNIX-CONNECT\\:/run/lab-agent/engine.sock' 2>/dev/null")
    assert nodes.connects == ["n1"]  # one SSH connection, a channel per docker client


@pytest.fixture
def lab(private_lab_home: Path) -> Any:
    state = LabState("dk")
    state.claim()
    node = NodeRecord(name="n1", domain="lab-dk-n1", ssh_port=40111, mac="52:54:00:00:00:01", overlay="o",
                      seed="s", console_log="c", host_key="k", memory_mib=512, cpus=1, image="debian-12")
    state.save(Ledger(name="dk", uri="qemu:///embed?root=x", source="x.yaml", instance="i", nodes={"n1": node}))
    yield state
    shutil.rmtree(state.dir)


def test_endpoint_uses_the_labs_key_and_known_hosts(lab: LabState) -> None:
    endpoint = docker.node_endpoint("dk", "n1")
    assert (endpoint.port, endpoint.user, endpoint.host) == (40111, "lab", "127.0.0.1")
    assert endpoint.key == lab.user_key and endpoint.known_hosts == lab.known_hosts
    with pytest.raises(UserInputError, match="no node 'nope'"):
        docker.node_endpoint("dk", "nope")


def test_socket_path_is_in_the_lab_dir_or_a_private_tmp_dir(lab: LabState, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    assert docker.socket_path("dk", "n1") == lab.dir / "docker" / "n1.sock"
    monkeypatch.setattr(LabState, "__init__", lambda self, name: setattr(self, "dir", Path("/x" * 60)))
    monkeypatch.setattr(docker.tempfile, "gettempdir", lambda: str(tmp_path))
    path = docker.socket_path("dk", "n1")
    assert path == tmp_path / f"lab-docker-{os.getuid()}" / "dk-n1.sock"
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    os.chmod(path.parent, 0o755)
    with pytest.raises(docker.DockerProxyError, match="not a private directory"):
        docker.socket_path("dk", "n1")


def test_no_background_proxy_is_reported_as_none(lab: LabState) -> None:
    assert docker.running_proxy("dk", "n1") is None
    assert docker.stop_background("dk", "n1") is False


def test_commands_pass_arguments_and_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    group = click.Group()
    cli_docker.register(group)
    calls: list[tuple[str, str, list[str], Any]] = []
    seams = seams_for(FakeHypervisor(), FakeNodes())
    monkeypatch.setattr(docker, "run_docker",
                        lambda lab, node, args, seams: calls.append((lab, node, args, seams)) or 5)
    result = CliRunner().invoke(group, ["docker", "dk", "n1", "--", "run", "--rm", "-e", "A=1", "busybox"], obj=seams)
    assert result.exit_code == 5 and calls == [("dk", "n1", ["run", "--rm", "-e", "A=1", "busybox"], seams)]
    monkeypatch.setattr(docker, "ensure_background", lambda lab, node: (Path("/s/n1.sock"), 42))
    result = CliRunner().invoke(group, ["docker-env", "dk", "n1"])
    assert result.output.splitlines()[0] == "export DOCKER_HOST=unix:///s/n1.sock"
    monkeypatch.undo()
    result = CliRunner().invoke(group, ["docker", "nolab", "n1", "--", "ps"], obj=seams)
    assert result.exit_code == 2 and "no lab named 'nolab'" in result.output
