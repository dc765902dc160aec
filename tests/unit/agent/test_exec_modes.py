"""docker exec in every mode docker-py's exec_run has, and the docker CLI's, against the real server.

The fake crun runs the exec on the host: without a TTY through crun's own stdio, with one on a
host pty whose master it sends to --console-socket as crun does; it records the process file.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from labagent.client import ApiError, Client
from labagent.containers import detachkeys
from labagent.errors import BadParameter

from .dockerhost import DOCKER, EngineProcess, docker_client, start_engine, until

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("execmodes"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    yield from docker_client(eng)


@pytest.fixture
def ctr(sdk):
    return sdk.containers.run("busybox", ["sleep", "300"], detach=True, name="box", environment={"FROM_CTR": "1"})


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(20)  # a hang fails the test instead of stalling the suite
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


def process_file(eng: EngineProcess, cid: str) -> dict:
    return json.loads((eng.base / "seams" / "crun-state" / f"{cid}.exec.json").read_text())


def test_exit_codes_and_the_two_streams(ctr) -> None:
    assert ctr.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True) == (3, (b"out\n", b"err\n"))
    assert ctr.exec_run("true") == (0, b"")
    assert ctr.exec_run(["sh", "-c", "echo only-out; echo hidden >&2"], stderr=False) == (0, b"only-out\n")
    assert ctr.exec_run(["sh", "-c", "echo hidden; echo only-err >&2"], stdout=False) == (0, b"only-err\n")


def test_a_command_that_cannot_start_is_126_with_cruns_words(ctr) -> None:
    code, output = ctr.exec_run("nosuchcmd")
    assert code == 126
    assert output.startswith(b"OCI runtime exec failed: ") and b"`nosuchcmd` not found" in output


def test_env_user_and_workdir_reach_the_process(eng: EngineProcess, ctr) -> None:
    etc = eng.base / "root" / "containers" / ctr.id / "rootfs" / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\ndefault:x:1000:1000::/home/default:/bin/sh\n")
    code, output = ctr.exec_run(["sh", "-c", "echo $FROM_CTR-$X"], environment={"X": "Y"}, user="default",
                                workdir="/var/www")
    assert (code, output) == (0, b"1-Y\n")  # the container's environment, then the exec's
    process = process_file(eng, ctr.id)
    assert process["user"]["uid"] == 1000 and process["user"]["gid"] == 1000  # resolved in its /etc/passwd
    assert process["cwd"] == "/var/www" and "X=Y" in process["env"] and process["terminal"] is False
    result = ctr.exec_run("id", user="nosuch")  # as dockerd: the stream says why, the exit code is 126
    assert result == (126, b"unable to find user nosuch: no matching entries in passwd file\r\n")


def test_stream_and_demux_generators(sdk, ctr) -> None:
    cmd = ["sh", "-c", "echo a; echo b >&2"]
    _, chunks = ctr.exec_run(cmd, stream=True)
    assert sorted(b"".join(chunks).splitlines()) == [b"a", b"b"]
    _, pairs = ctr.exec_run(cmd, stream=True, demux=True)
    assert sorted(pairs, key=repr) == sorted([(b"a\n", None), (None, b"b\n")], key=repr)
    eid = sdk.api.exec_create(ctr.id, ["echo", "hello\nworld"])
    assert b"".join(sdk.api.exec_start(eid, stream=True)) == b"hello\nworld\n"


def test_socket_mode_sends_stdin_and_ends_on_half_close(sdk, ctr) -> None:
    eid = sdk.api.exec_create(ctr.id, ["cat"], stdin=True)
    sock = sdk.api.exec_start(eid, socket=True)._sock
    sock.sendall(b"round ")
    sock.sendall(b"trip\n")
    sock.shutdown(socket.SHUT_WR)  # cat's stdin closes, so cat ends
    output = b"".join(data for _, data in frames(read_all(sock)))
    sock.close()
    assert output == b"round trip\n"
    info = sdk.api.exec_inspect(eid)
    assert (info["Running"], info["ExitCode"], info["OpenStdin"]) == (False, 0, True)


def test_stdin_sent_with_the_request_itself_is_not_lost(eng: EngineProcess, sdk, ctr) -> None:
    eid = sdk.api.exec_create(ctr.id, ["cat"], stdin=True)["Id"]
    body = b'{"Detach": false, "Tty": false}'
    head = (f"POST /v1.43/exec/{eid}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(eng.socket))
    sock.sendall(head + body + b"in the same packet\n")  # already in the server's read buffer
    sock.shutdown(socket.SHUT_WR)
    reply, _, stream = read_all(sock).partition(b"\r\n\r\n")
    sock.close()
    assert reply.startswith(b"HTTP/1.1 101 UPGRADED")
    assert frames(stream) == [(1, b"in the same packet\n")]


def test_without_stdin_attached_the_process_reads_nothing(ctr) -> None:
    assert ctr.exec_run(["sh", "-c", "cat; echo eof"]) == (0, b"eof\n")


def test_tty_output_is_raw_and_the_process_has_a_terminal(eng: EngineProcess, sdk, ctr) -> None:
    code, output = ctr.exec_run(["sh", "-c", "echo hello; echo err >&2; test -t 1 && echo tty; echo $TERM"],
                                tty=True)
    assert (code, output) == (0, b"hello\r\nerr\r\ntty\r\nxterm\r\n")  # no frame headers, one stream
    assert process_file(eng, ctr.id)["terminal"] is True
    eid = sdk.api.exec_create(ctr.id, ["printf", "yay"], tty=True)
    sock = sdk.api.exec_start(eid, socket=True)._sock  # started with Tty false: framed, as Docker does
    assert frames(read_all(sock)) == [(1, b"yay")]
    sock.close()


def test_tty_input_and_resize(eng: EngineProcess, sdk, ctr) -> None:
    eid = sdk.api.exec_create(ctr.id, ["sh", "-c", "read line; stty size; echo got:$line"], stdin=True, tty=True)
    sock = sdk.api.exec_start(eid, socket=True, tty=True)._sock
    sdk.api.exec_resize(eid, height=30, width=100)
    sock.sendall(b"x\n")
    output = read_all(sock)
    sock.close()
    assert output == b"x\r\n30 100\r\ngot:x\r\n"  # the terminal echoes, the size arrived first
    assert sdk.api.exec_inspect(eid)["ExitCode"] == 0
    with pytest.raises(docker.errors.NotFound, match="No such exec instance"):
        sdk.api.exec_resize("nosuch", height=1, width=1)
    # ConsoleSize at create (the CLI sends it at start too) is the pty's size before the process runs
    body = {"Cmd": ["stty", "size"], "Tty": True, "AttachStdout": True, "ConsoleSize": [40, 90]}
    sized = Client(str(eng.socket)).json("POST", f"/containers/{ctr.id}/exec", body=body)["Id"]
    assert sdk.api.exec_start(sized, tty=True) == b"40 90\r\n"
    assert process_file(eng, ctr.id)["consoleSize"] == {"height": 40, "width": 90}
    with pytest.raises(docker.errors.APIError, match="h: 'tall' is not a number") as err:
        sdk.api.exec_resize(eid, height="tall", width=1)
    assert err.value.status_code == 400
    with pytest.raises(docker.errors.APIError, match="out of range"):
        sdk.api.exec_resize(eid, height=70000, width=1)


def test_detach_keys_leave_the_process_running(sdk, ctr) -> None:
    eid = sdk.api.exec_create(ctr.id, ["cat"], stdin=True, tty=True, detach_keys="ctrl-x")
    info = sdk.api.exec_inspect(eid)
    assert info["DetachKeys"] == base64.b64encode(b"\x18").decode()
    sock = sdk.api.exec_start(eid, socket=True, tty=True)._sock
    sock.settimeout(20)
    sock.sendall(b"abc\n")
    output = b""
    while b"abc\r\nabc\r\n" not in output:  # the terminal's echo, then cat's copy
        chunk = sock.recv(64)
        assert chunk, output
        output += chunk
    sock.sendall(b"\x18")
    assert read_all(sock) == b""  # the engine hangs up on the detach keys
    sock.close()
    info = sdk.api.exec_inspect(eid)
    assert info["Running"] is True and info["Pid"] > 0  # the process runs on, as after docker's detach
    os.kill(info["Pid"], signal.SIGKILL)  # the fake runs it on the host
    assert until(lambda: sdk.api.exec_inspect(eid)["ExitCode"] == 137)
    # With a TTY, the client's half-close ends its session, not the process's input (as dockerd)
    eid = sdk.api.exec_create(ctr.id, ["cat"], stdin=True, tty=True)
    sock = sdk.api.exec_start(eid, socket=True, tty=True)._sock
    sock.shutdown(socket.SHUT_WR)
    assert read_all(sock) == b""
    sock.close()
    info = sdk.api.exec_inspect(eid)
    assert info["Running"] is True and info["Pid"] > 0
    os.kill(info["Pid"], signal.SIGKILL)
    assert until(lambda: sdk.api.exec_inspect(eid)["Running"] is False)


def test_detached_start_returns_at_once_and_inspect_shows_the_exit(sdk, ctr) -> None:
    eid = sdk.api.exec_create(ctr.id, ["sh", "-c", "exit 7"])
    assert sdk.api.exec_start(eid, detach=True) == ""
    assert until(lambda: sdk.api.exec_inspect(eid)["ExitCode"] == 7)
    assert ctr.exec_run(["sh", "-c", "exit 9"], detach=True).output == ""


def test_inspect_has_dockers_shape(sdk, ctr) -> None:
    eid = sdk.api.exec_create(ctr.id, ["sh", "-c", "exit 0"], tty=True, stdin=True, stderr=False, user="0:0")
    info = sdk.api.exec_inspect(eid)
    assert info == {
        "ID": eid["Id"], "Running": False, "ExitCode": None, "ContainerID": ctr.id, "Pid": 0,
        "ProcessConfig": {"tty": True, "entrypoint": "sh", "arguments": ["-c", "exit 0"], "privileged": False,
                          "user": "0:0"},
        "OpenStdin": True, "OpenStdout": True, "OpenStderr": False, "CanRemove": False, "DetachKeys": "",
    }


def test_refusals_have_dockers_statuses(sdk, ctr) -> None:
    eid = sdk.api.exec_create(ctr.id, ["true"])
    sdk.api.exec_start(eid)
    with pytest.raises(docker.errors.APIError, match="has already run") as err:
        sdk.api.exec_start(eid)
    assert err.value.status_code == 409
    cases = [({"privileged": True}, "Privileged"), ({"workdir": "relative"}, "WorkingDir"),
             ({"detach_keys": "ctrl-1"}, "Invalid detach keys"), ({"user": "a:b:c"}, "User")]
    for options, message in cases:
        with pytest.raises(docker.errors.APIError, match=message) as err:
            sdk.api.exec_create(ctr.id, ["true"], **options)
        assert err.value.status_code == 400
    with pytest.raises(docker.errors.NotFound, match="No such exec instance"):
        sdk.api.exec_inspect("nosuch")
    late = sdk.api.exec_create(ctr.id, ["true"])
    ctr.kill()
    ctr.wait()
    for call in (lambda: sdk.api.exec_start(late), lambda: sdk.api.exec_create(ctr.id, ["true"]),
                 lambda: sdk.api.exec_resize(late, height=1, width=1)):
        with pytest.raises(docker.errors.APIError, match="is not running") as err:
            call()
        assert err.value.status_code == 409


def test_events_and_a_paused_container(tmp_path: Path, engine, client) -> None:
    sdk = docker.DockerClient(base_url=f"unix://{tmp_path}/run/engine.sock", timeout=15)
    ctr = sdk.containers.run("busybox", ["sleep", "300"], detach=True, name="ev", labels={"team": "a"})
    result = ctr.exec_run(["sh", "-c", "exit 4"])
    assert result.exit_code == 4
    events = [e for e in engine.events.past(0) if e.action.startswith("exec_")]
    assert [e.action for e in events] == ["exec_create: sh -c exit 4", "exec_start: sh -c exit 4", "exec_die"]
    assert {e.actor_id for e in events} == {ctr.id}
    eid = events[0].attributes["execID"]
    assert all(e.attributes["execID"] == eid for e in events)
    assert events[2].attributes["exitCode"] == "4"
    assert events[0].attributes["name"] == "ev" and events[0].attributes["image"] == "busybox"
    assert events[0].attributes["team"] == "a"
    tty = sdk.api.exec_create(ctr.id, ["cat"], stdin=True, tty=True)
    sock = sdk.api.exec_start(tty, socket=True, tty=True)._sock
    sock.sendall(detachkeys.DEFAULT)  # Docker's ctrl-p,ctrl-q
    assert read_all(sock) == b""
    sock.close()
    detached = [e for e in engine.events.past(0) if e.action == "exec_detach"]
    assert [e.attributes["execID"] for e in detached] == [tty["Id"]]
    pid = sdk.api.exec_inspect(tty)["Pid"]
    assert pid > 0
    os.kill(pid, signal.SIGKILL)
    assert until(lambda: sdk.api.exec_inspect(tty)["Running"] is False)
    engine.containers.get(ctr.id).state.paused = True
    with pytest.raises(docker.errors.APIError, match="is paused, unpause the container before exec") as err:
        ctr.exec_run("true")
    assert err.value.status_code == 409
    engine.containers.get(ctr.id).state.paused = False
    sdk.close()


def test_detach_key_specs_parse_and_scan() -> None:
    assert detachkeys.parse("ctrl-p,ctrl-q") == detachkeys.DEFAULT
    assert detachkeys.parse("a,ctrl-@,ctrl-]") == b"a\x00\x1d"
    for bad in ("ctrl-", "ctrl-1", "ab", "ctrl-pp", ""):
        with pytest.raises(BadParameter, match="Invalid detach keys"):
            detachkeys.parse(bad)
    scanner = detachkeys.Scanner(detachkeys.DEFAULT)
    assert scanner.feed(b"a\x10") == (b"a", False)  # a ctrl-p is held: it may begin the keys
    assert scanner.feed(b"b") == (b"\x10b", False)  # it did not: it reaches the process
    assert scanner.feed(b"c\x10") == (b"c", False)
    assert scanner.feed(b"\x11after") == (b"", True)


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_exec_with_stdin_and_with_a_terminal(eng: EngineProcess, ctr) -> None:
    out = eng.docker("exec", "-i", "box", "cat", stdin=b"piped in\n")
    assert (out.returncode, out.stdout, out.stderr) == (0, "piped in\n", "")
    out = eng.docker("exec", "-t", "box", "sh", "-c", "echo hi; exit 3")
    assert (out.returncode, out.stdout) == (3, "hi\r\n")
    out = eng.docker("exec", "-d", "box", "sh", "-c", "exit 0")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    master, slave = os.openpty()  # docker exec -it wants its stdin to be a terminal
    termios.tcsetwinsize(slave, (33, 120))
    proc = subprocess.Popen([DOCKER, "exec", "-it", "box", "sh", "-c", "stty size; read x; echo got:$x; exit 5"],
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
            if b"33 120" in output and not sent:  # the CLI's size reached the exec's terminal
                os.write(master, b"yo\r")
                sent = True
        assert proc.wait(20) == 5
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert b"got:yo" in output


def test_the_engine_runs_an_exec_of_its_own(engine, client) -> None:
    """As a healthcheck would: a bare command in, output and exit code out, no connection."""
    body = {"Image": "busybox", "Cmd": ["sleep", "30"]}
    cid = client.json("POST", "/containers/create", {"name": "inner"}, body)["Id"]
    client.request("POST", f"/containers/{cid}/start").read()
    got: list[tuple[int, bytes]] = []
    session = engine.execs.start(engine.execs.create(cid, ["sh", "-c", "echo $A; exit 2"], ["A=x"]).id,
                                 lambda stream, data: got.append((stream, data)))
    assert (session.exit_code, got) == (2, [(1, b"x\n")])
    assert not list(engine.containers.bundle(cid).glob("exec-*"))  # its files go with it


@pytest.mark.parametrize(("body", "message"), [
    ({"Cmd": ["true"] * 5000}, "at most 4096 entries"),
    ({"Cmd": ["true"], "Env": ["A=\x00"]}, "NUL byte"),
    ({"Cmd": ["true\x00rm"]}, "NUL byte"),
    ({"Cmd": ["true"], "Env": [1]}, "Env must be a list of strings"),
    ({"Cmd": ["true"], "Env": "A=1"}, "Cmd and Env must be lists"),
    ({"Cmd": {"a": 1}}, "Cmd and Env must be lists"),
    ({"Cmd": []}, "No exec command specified"),
    ({"Cmd": ["true"], "Tty": True, "ConsoleSize": [70000, 1]}, "ConsoleSize: 70000 is out of range"),
    ({"Cmd": ["true"], "ConsoleSize": "24x80"}, "ConsoleSize must be"),
    ({"Cmd": ["true"], "AttachStdin": "yes"}, "AttachStdin must be true or false"),
    ({"Cmd": ["true"], "User": 0}, "User must be a string"),
    ({"Cmd": ["true"], "DetachKeys": ",".join(["a"] * 40)}, "at most 32 detach keys"),
    ([], "must be a JSON object"),
])
def test_hostile_exec_bodies_are_refused(eng: EngineProcess, ctr, body, message) -> None:
    with pytest.raises(ApiError) as err:
        Client(str(eng.socket)).json("POST", f"/containers/{ctr.id}/exec", body=body)
    assert err.value.status == 400 and message in err.value.message
