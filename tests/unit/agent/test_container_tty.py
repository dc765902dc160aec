"""Containers with a terminal (Tty) and an open stdin, with docker-py and the docker CLI, on the real server.

The fake crun runs the container's process on the host: with a terminal, on a host pty whose
master it sends to the console socket of the shim's relay, as crun does. Every command here
touches only relative paths or none.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from labagent.api.createbody import spec_from_body
from labagent.client import ApiError
from labagent.errors import BadParameter
from labagent.runtime import stdiorelay

from .dockerhost import DOCKER, EngineProcess, docker_client, start_engine, until

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("tty"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    yield from docker_client(eng)


def read_until(sock: socket.socket, wanted: bytes) -> bytes:
    sock.settimeout(20)  # a hang fails the test instead of stalling the suite
    data = b""
    while wanted not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def test_tty_output_is_raw_from_a_terminal_and_inspect_says_so(sdk) -> None:
    out = sdk.containers.run("busybox", ["sh", "-c", "tty; echo err >&2; echo $TERM"], tty=True, name="t1")
    lines = out.split(b"\r\n")  # no frame headers, one stream, the terminal's line endings
    assert lines[0].startswith(b"/dev/pts/") and lines[1:] == [b"err", b"xterm", b""], out
    c = sdk.containers.get("t1")
    assert c.attrs["Config"]["Tty"] is True and c.attrs["Config"]["OpenStdin"] is False
    assert c.logs() == out  # logs of a TTY container are raw too
    assert c.logs(stderr=False) == out  # a terminal has one stream: stdout
    plain = sdk.api.create_container("busybox", ["true"], stdin_open=True)
    config = sdk.api.inspect_container(plain["Id"])["Config"]
    assert (config["Tty"], config["OpenStdin"], config["StdinOnce"], config["AttachStdin"]) == (False, True, True, True)


def test_attach_socket_with_stdin_to_a_tty_echoes_resizes_and_detaches(sdk) -> None:
    api = sdk.api
    cid = api.create_container("busybox", ["sh", "-c", "cat; read x; stty size; read y"], stdin_open=True,
                               tty=True, name="t2")["Id"]
    api.start(cid)
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})._sock
    sock.sendall(b"hello\n")
    assert read_until(sock, b"hello\r\nhello\r\n") == b"hello\r\nhello\r\n"  # the terminal's echo, cat's copy
    sock.sendall(b"\x04")  # ctrl-d: the terminal's end of input ends cat
    api.resize(cid, height=30, width=100)
    sock.sendall(b"x\n")
    assert b"30 100\r\n" in read_until(sock, b"30 100\r\n")
    sock.sendall(b"\x10\x11")  # ctrl-p ctrl-q: the engine hangs up, the container runs on
    assert b"\x10" not in read_all(sock)
    sock.close()
    assert api.inspect_container(cid)["State"]["Running"] is True
    again = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    again.sendall(b"bye\n")  # the last read ends the shell
    assert read_until(again, b"bye\r\n")
    assert api.wait(cid, timeout=20)["StatusCode"] == 0
    again.close()
    with pytest.raises(docker.errors.APIError) as err:
        api.resize(cid, height=1, width=1)
    assert err.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as err:
        api.resize(cid, height="tall", width=1)
    assert err.value.status_code == 400


def test_stdin_once_closes_stdin_at_the_clients_half_close(sdk) -> None:
    api = sdk.api
    cid = api.create_container("busybox", ["sh", "-c", "cat; echo done"], stdin_open=True)["Id"]
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})._sock
    sock.sendall(b"before the start\n")  # waits in the FIFO until the relay runs
    api.start(cid)
    sock.sendall(b"after\n")
    sock.shutdown(socket.SHUT_WR)
    assert b"".join(d for _, d in frames(read_all(sock))) == b"before the start\nafter\ndone\n"
    sock.close()
    assert api.wait(cid, timeout=20)["StatusCode"] == 0
    # Without OpenStdin the process's stdin is /dev/null, and input sent to it goes nowhere
    closed = api.create_container("busybox", ["sh", "-c", "cat; echo eof"])["Id"]
    api.start(closed)
    assert api.wait(closed, timeout=20)["StatusCode"] == 0
    assert api.logs(closed) == b"eof\n"


def test_create_fields_of_a_terminal_are_checked() -> None:
    for body, field in [({"Tty": "yes"}, "Tty"), ({"OpenStdin": 1}, "OpenStdin"),
                        ({"HostConfig": {"ConsoleSize": [70000, 1]}}, "ConsoleSize"),
                        ({"HostConfig": {"ConsoleSize": "24x80"}}, "ConsoleSize")]:
        with pytest.raises(BadParameter, match=field):
            spec_from_body({"Image": "busybox", **body})
    spec = spec_from_body({"Image": "busybox", "Tty": True, "HostConfig": {"ConsoleSize": [24, 80]}})
    assert (spec.tty, spec.console_size) == (True, [24, 80])
    assert stdiorelay.parse_control(b"size 30 100") == ("size", 30, 100)
    assert [stdiorelay.parse_control(line) for line in (b"size 99999 1", b"size -1 2", b"rm -rf", b"")] == [None] * 4


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_run_i_passes_piped_input(eng: EngineProcess) -> None:
    out = eng.docker("run", "-i", "--rm", "busybox", "cat", stdin=b"piped in\nline two\n")
    assert (out.returncode, out.stdout, out.stderr) == (0, "piped in\nline two\n", "")
    out = eng.docker("run", "-t", "--rm", "busybox", "sh", "-c", "echo hi; exit 3")
    assert (out.returncode, out.stdout) == (3, "hi\r\n")


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_run_it_through_a_host_terminal(eng: EngineProcess) -> None:
    master, slave = os.openpty()  # docker run -it wants its stdin to be a terminal
    termios.tcsetwinsize(slave, (33, 120))
    proc = subprocess.Popen([DOCKER, "run", "-it", "--rm", "busybox", "sh", "-c",
                             "stty size; read x; echo got:$x; exit 5"],
                            stdin=slave, stdout=slave, stderr=slave, env=eng.env(), start_new_session=True)
    os.close(slave)
    output, sent = b"", False
    try:
        while select.select([master], [], [], 20)[0]:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the CLI has exited
                break
            output += data
            if b"33 120" in output and not sent:  # the CLI's size reached the container's terminal
                os.write(master, b"yo\r")
                sent = True
        assert proc.wait(20) == 5
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert b"got:yo" in output, output


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_run_it_detaches_on_ctrl_p_ctrl_q_and_the_container_runs_on(eng: EngineProcess, sdk) -> None:
    master, slave = os.openpty()
    proc = subprocess.Popen([DOCKER, "run", "-it", "--name", "stay", "busybox", "sh", "-c",
                             "echo ready; read x; echo got:$x"],
                            stdin=slave, stdout=slave, stderr=slave, env=eng.env(), start_new_session=True)
    os.close(slave)
    output, sent = b"", False
    try:
        while select.select([master], [], [], 20)[0]:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            output += data
            if b"ready" in output and not sent:
                os.write(master, b"\x10\x11")
                sent = True
        assert proc.wait(20) == 0, output
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    c = sdk.containers.get("stay")
    assert c.status == "running"  # detached, not stopped
    sock = sdk.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x"})._sock
    sock.sendall(b"later\n")
    assert b"got:later" in read_until(sock, b"got:later")
    sock.close()
    assert c.wait(timeout=20)["StatusCode"] == 0
    with pytest.raises(docker.errors.APIError, match="detachKeys") as err:
        sdk.api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-"})
    assert err.value.status_code == 400


def test_a_tty_container_survives_an_engine_restart(tmp_path: Path) -> None:
    first = start_engine(tmp_path / "eng")
    try:
        client = docker.DockerClient(base_url=first.host, timeout=15)
        c = client.containers.run("busybox", ["sh", "-c", "echo before; read x; echo got:$x"], tty=True,
                                  stdin_open=True, detach=True, name="keep")
        assert until(lambda: b"before" in c.logs())
        client.close()
    finally:
        first.stop()
    first.socket.unlink(missing_ok=True)  # else the next start takes the old socket for the new one's
    second = start_engine(tmp_path / "eng")  # the shim and its relay held the pty meanwhile
    try:
        client = docker.DockerClient(base_url=second.host, timeout=15)
        c = client.containers.get("keep")
        assert c.status == "running"
        sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
        sock.sendall(b"there\n")
        assert b"got:there\r\n" in read_until(sock, b"got:there\r\n")
        sock.close()
        assert c.wait(timeout=20)["StatusCode"] == 0
        assert c.logs() == b"before\r\nthere\r\ngot:there\r\n"
        c.remove()
        client.close()
    finally:
        second.stop()


def test_a_resize_emits_dockers_event(engine, client) -> None:
    body = {"Image": "busybox", "Cmd": ["sh", "-c", "read x"], "Tty": True, "OpenStdin": True}
    cid = client.json("POST", "/containers/create", body=body)["Id"]
    client.json("POST", f"/containers/{cid}/start")
    for hostile in ("²", "9" * 5000, "-1", "65536", ""):
        with pytest.raises(ApiError) as err:
            client.json("POST", f"/containers/{cid}/resize", {"h": hostile, "w": 70})
        assert err.value.status == 400 and "h:" in err.value.message
    client.json("POST", f"/containers/{cid}/resize", {"h": 20, "w": 70})
    resized = [e for e in engine.events.past(0) if e.action == "resize"]
    assert [(e.actor_id, e.attributes["height"], e.attributes["width"]) for e in resized] == [(cid, "20", "70")]
    engine.lifecycle.kill(cid)


def test_detach_keys_on_an_input_only_attach_close_the_socket(sdk) -> None:
    c = sdk.containers.run("busybox", ["cat"], stdin_open=True, tty=True, detach=True)
    sock = sdk.api.attach_socket(c.id, {"stdin": True, "stream": True})._sock  # no output asked for
    sock.settimeout(20)
    sock.sendall(b"\x10")
    sock.sendall(b"\x11")
    assert sock.recv(64) == b""  # the engine hung up
    with pytest.raises(OSError):  # and stopped reading: a unix socket's writer gets EPIPE
        for _ in range(64):
            sock.sendall(b"make sure the socket is closed\n")
    sock.close()
    c.reload()
    assert c.status == "running"


def test_the_relay_passes_stdin_on_closes_it_at_eof_and_exits_with_cruns_status(tmp_path: Path) -> None:
    """The relay alone, with `sh` standing in for crun: what the FIFO held before the eof goes first."""
    fifo = stdiorelay.open_fifo(str(tmp_path / stdiorelay.STDIN_FIFO))  # held, as an attach session does
    control = stdiorelay.open_fifo(str(tmp_path / stdiorelay.CONTROL_FIFO))
    os.write(fifo, b"one\ntwo\n")
    os.write(control, b"size 1 2\nnonsense\neof\n")  # written before the relay runs: it waits in the FIFO
    relay = subprocess.run([sys.executable, "-I", "-S", stdiorelay.__file__, "--stdin", str(tmp_path), "--",
                            "sh", "-c", "cat; exit 7"], capture_output=True, timeout=20, check=False)
    os.close(fifo)
    os.close(control)
    assert (relay.returncode, relay.stdout, relay.stderr) == (7, b"one\ntwo\n", b"")


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_a_compose_service_with_tty_and_stdin_open(eng: EngineProcess, sdk, tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(
        'version: "3"\nservices:\n  shell:\n    image: busybox\n    command: sh -c "echo up; cat"\n'
        "    tty: true\n    stdin_open: true\n")

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", "-p", "ttyproj", *args], cwd=tmp_path, env=eng.env(),
                              capture_output=True, text=True, timeout=60, check=False)

    assert compose("up", "-d").returncode == 0
    try:
        c = sdk.containers.get("ttyproj_shell_1")
        assert until(lambda: c.logs() == b"up\r\n")  # raw, from its terminal
        c.reload()  # cat holds on to the open stdin: the service stays up
        assert c.status == "running" and c.attrs["Config"]["Tty"] and c.attrs["Config"]["OpenStdin"]
        assert "up" in compose("logs").stdout
    finally:
        assert compose("down").returncode == 0
