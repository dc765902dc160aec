"""HTTP/1.1 framing against the real engine server (a subprocess, fake seams), over raw sockets.

Persistent connections, pipelining, `Connection: close`, HTTP/1.0, chunked bodies both ways,
hijacked streams that end in a clean end-of-file, and docker-py's kept-alive pool across the
stop/wait/remove sequence that used to end in "Connection reset by peer".
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from .dockerhost import EngineProcess, start_engine

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("framing"))
    yield engine
    engine.stop()


@pytest.fixture
def api(eng: EngineProcess) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=eng.host, version="1.43", timeout=20)
    yield client
    for c in client.containers(all=True):
        client.remove_container(c["Id"], force=True)
    client.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Conn:
    """A raw unix-socket connection that reads replies one by one from one buffer."""

    def __init__(self, eng: EngineProcess, timeout: float = 20.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(str(eng.socket))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> bytes:
        data = self.sock.recv(65536)  # a reset raises here, and fails the test
        self.buf += data
        return data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            assert self._more(), f"connection closed with {n - len(self.buf)} bytes missing"
        piece, self.buf = self.buf[:n], self.buf[n:]
        return piece

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            assert self._more(), f"connection closed mid-line: {self.buf!r}"
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def head(self) -> tuple[int, dict[str, str]]:
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def reply(self, method: str = "GET") -> Reply:
        status, headers = self.head()
        if method == "HEAD" or status in (204, 304):
            return Reply(status, headers, b"")
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            while self._line():  # trailers
                pass
            return Reply(status, headers, body)
        if "content-length" in headers:
            return Reply(status, headers, self._take(int(headers["content-length"])))
        return Reply(status, headers, self.rest())

    def rest(self) -> bytes:
        """Everything up to the end of file (a close-delimited body, a hijacked stream)."""
        while self._more():
            pass
        data, self.buf = self.buf, b""
        return data

    def at_eof(self) -> bool:
        return not self.buf and self._more() == b""

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(eng: EngineProcess) -> Iterator[Conn]:
    c = Conn(eng)
    yield c
    c.close()


def request(method: str, target: str, body: bytes | None = None, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: docker", *headers]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def running(api: docker.APIClient, name: str, cmd: list[str]) -> str:
    cid = api.create_container("busybox", cmd, name=name)["Id"]
    api.start(cid)
    return str(cid)


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


# persistent connections ---------------------------------------------------------------
def test_many_requests_on_one_connection(conn: Conn) -> None:
    for _ in range(30):
        conn.send(request("GET", "/_ping"))
        reply = conn.reply()
        assert (reply.status, reply.body) == (200, b"OK")
        assert reply.headers.get("connection", "").lower() != "close"
    conn.send(request("GET", "/v1.43/version"))
    assert json.loads(conn.reply().body)["ApiVersion"] == "1.43"


def test_pipelined_requests_in_one_send_are_all_answered_in_order(conn: Conn) -> None:
    body = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
    conn.send(request("GET", "/_ping") + request("POST", "/containers/create?name=piped", body)
              + request("GET", "/containers/piped/json") + request("GET", "/containers/nosuch/json")
              + request("DELETE", "/containers/piped") + request("GET", "/v1.43/version"))
    ping, created, inspected, missing, removed, version = (conn.reply() for _ in range(6))
    assert (ping.status, ping.body) == (200, b"OK")
    assert created.status == 201
    cid = json.loads(created.body)["Id"]
    assert (inspected.status, json.loads(inspected.body)["Id"]) == (200, cid)
    assert missing.status == 404 and "No such container: nosuch" in json.loads(missing.body)["message"]
    assert removed.status == 204
    assert version.status == 200 and json.loads(version.body)["ApiVersion"] == "1.43"


def test_errors_with_intact_framing_keep_the_connection(conn: Conn) -> None:
    """A 404, a 409 or a 400 whose body was sent in full is an answer, not a broken connection."""
    body = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
    conn.send(request("POST", "/containers/create?name=twice", body))
    assert conn.reply().status == 201
    conn.send(request("POST", "/containers/create?name=twice", body))
    assert conn.reply().status == 409
    conn.send(request("POST", "/containers/nosuch/start", b'{"unread": "body"}'))
    assert conn.reply().status == 404
    conn.send(request("POST", "/nowhere", b'{"unread": "body"}'))
    assert conn.reply().status == 404
    conn.send(request("GET", "/v9.99/version"))
    assert conn.reply().status == 400
    conn.send(request("DELETE", "/containers/twice"))
    assert conn.reply().status == 204
    conn.send(request("GET", "/_ping"))
    assert conn.reply().body == b"OK"


def test_connection_close_is_said_and_done(conn: Conn) -> None:
    conn.send(request("GET", "/_ping", None, "Connection: close"))
    reply = conn.reply()
    assert reply.body == b"OK" and reply.headers["connection"].lower() == "close"
    assert conn.at_eof()


def test_a_framing_error_says_close_and_closes(conn: Conn) -> None:
    conn.send(b"GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx")
    reply = conn.reply()
    assert reply.status == 400 and reply.headers["connection"].lower() == "close"
    assert conn.at_eof()


def test_http10_closes_unless_kept_alive(eng: EngineProcess) -> None:
    plain = Conn(eng)
    plain.send(request("GET", "/_ping", version="1.0"))
    reply = plain.reply()
    assert reply.body == b"OK" and reply.headers["connection"].lower() == "close"
    assert plain.at_eof()
    plain.close()
    kept = Conn(eng)
    kept.send(request("GET", "/_ping", None, "Connection: keep-alive", version="1.0"))
    reply = kept.reply()
    assert reply.body == b"OK" and reply.headers["connection"].lower() == "keep-alive"
    kept.send(request("GET", "/_ping", version="1.0"))
    assert kept.reply().body == b"OK"
    assert kept.at_eof()
    kept.close()


def test_http10_streams_are_close_delimited(api: docker.APIClient, eng: EngineProcess) -> None:
    cid = running(api, "old-logs", ["sh", "-c", "echo one; echo two"])
    api.wait(cid, timeout=10)
    old = Conn(eng)
    old.send(request("GET", f"/containers/{cid}/logs?stdout=1", version="1.0"))
    reply = old.reply()
    assert "transfer-encoding" not in reply.headers
    assert b"".join(d for _, d in frames(reply.body)) == b"one\ntwo\n"
    old.close()


def test_chunked_request_body(conn: Conn) -> None:
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "Labels": {"via": "chunks"}}).encode()
    conn.send(b"POST /containers/create?name=chunky HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body[:10], body[10:25], body[25:]))
    assert conn.reply().status == 201
    conn.send(request("GET", "/containers/chunky/json"))
    assert json.loads(conn.reply().body)["Config"]["Labels"] == {"via": "chunks"}
    conn.send(request("DELETE", "/containers/chunky"))
    assert conn.reply().status == 204


def test_chunked_replies_keep_the_connection(api: docker.APIClient, conn: Conn) -> None:
    cid = running(api, "chunked-out", ["sh", "-c", "echo out; echo err >&2; exit 4"])
    conn.send(request("POST", f"/containers/{cid}/wait", b""))
    waited = conn.reply()
    assert waited.headers["transfer-encoding"] == "chunked"
    assert json.loads(waited.body)["StatusCode"] == 4
    conn.send(request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1"))
    logs = conn.reply()
    assert logs.headers["transfer-encoding"] == "chunked"
    assert sorted(frames(logs.body)) == [(1, b"out\n"), (2, b"err\n")]
    conn.send(request("GET", "/_ping"))
    assert conn.reply().body == b"OK"


def test_a_streamed_reply_pipelined_between_requests(api: docker.APIClient, conn: Conn) -> None:
    cid = running(api, "piped-wait", ["sh", "-c", "sleep 0.3; exit 6"])
    conn.send(request("GET", "/_ping") + request("POST", f"/containers/{cid}/wait", b"")
              + request("GET", f"/containers/{cid}/json") + request("GET", "/_ping", None, "Connection: close"))
    ping, waited, inspected, last = (conn.reply() for _ in range(4))
    assert ping.body == b"OK" and json.loads(waited.body)["StatusCode"] == 6
    assert json.loads(inspected.body)["State"]["ExitCode"] == 6
    assert last.body == b"OK" and last.headers["connection"].lower() == "close"
    assert conn.at_eof()


# hijacked streams ---------------------------------------------------------------------
@pytest.mark.parametrize("upgrade", [True, False], ids=["upgrade", "plain"])
def test_exec_start_hijack_ends_with_eof(api: docker.APIClient, eng: EngineProcess, upgrade: bool) -> None:
    cid = running(api, f"hijack-{upgrade}", ["sleep", "30"])
    eid = api.exec_create(cid, ["sh", "-c", "echo hi; echo oops >&2; exit 3"])["Id"]
    c = Conn(eng)
    headers = ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else []
    c.send(request("POST", f"/exec/{eid}/start", b'{"Detach": false, "Tty": false}', *headers))
    c.send(b"input nobody reads\n" * 5000)  # more than the server's read buffer: unread at its close
    status, head = c.head()
    assert status == (101 if upgrade else 200)
    assert "content-length" not in head and "transfer-encoding" not in head
    # No half-close from this side (docker-py sends none): the engine's end of file ends it.
    assert sorted(frames(c.rest())) == [(1, b"hi\n"), (2, b"oops\n")]
    c.close()
    assert api.exec_inspect(eid)["ExitCode"] == 3


def test_attach_hijack_ends_with_eof(api: docker.APIClient, eng: EngineProcess) -> None:
    cid = api.create_container("busybox", ["sh", "-c", "echo attached; exit 1"], name="attach-eof")["Id"]
    c = Conn(eng)
    c.send(request("POST", f"/containers/{cid}/attach?stream=1&stdout=1&stderr=1", b"",
                   "Connection: Upgrade", "Upgrade: tcp"))
    status, _ = c.head()
    assert status == 101
    api.start(cid)
    assert frames(c.rest()) == [(1, b"attached\n")]  # then the end of file, with no half-close from here
    c.close()


def test_unread_input_after_a_close_is_no_reset(eng: EngineProcess) -> None:
    """The reply to a `Connection: close` request arrives whole even with more input queued."""
    c = Conn(eng)
    c.send(request("GET", "/_ping", None, "Connection: close") + request("GET", "/_ping") * 3000)  # > its buffer
    reply = c.reply()
    assert reply.body == b"OK"
    assert c.at_eof()  # an end of file, not ECONNRESET
    c.close()


# docker-py's pool -----------------------------------------------------------------------
def test_docker_py_sequence_on_one_kept_alive_client(api: docker.APIClient, eng: EngineProcess) -> None:
    """run detach, exec_run, stop, wait, remove; then more on the same client, then a fresh one."""
    finishes(lambda: sequence(eng))


def sequence(eng: EngineProcess) -> None:
    client = docker.DockerClient(base_url=eng.host, version="1.43", timeout=20)
    for round in range(3):
        ctr = client.containers.run("busybox", ["sleep", "30"], detach=True, name=f"seq{round}")
        result = ctr.exec_run(["sh", "-c", "echo $((6*7)); exit 2"])
        assert (result.exit_code, result.output) == (2, b"42\n")
        assert ctr.exec_run(["echo", "again"]).output == b"again\n"
        ctr.stop(timeout=1)
        assert ctr.wait(timeout=10)["StatusCode"] in (137, 143)
        ctr.remove()
        assert client.version()["ApiVersion"] == "1.43"
        assert [c.name for c in client.containers.list(all=True)] == []
    assert client.containers.run("busybox", ["echo", "removed"], remove=True) == b"removed\n"
    assert client.containers.list(all=True) == []
    client.close()
    fresh = docker.DockerClient(base_url=eng.host, version="1.43", timeout=20)
    assert fresh.version()["ApiVersion"] == "1.43"
    fresh.close()
