"""Hostile HTTP against the real engine server on a unix socket: heads, bodies, stalls, floods.

Every refusal must be a Docker-style JSON error ({"message": ...}) followed by a close, and
must leave the engine as it was: nothing created, no upload left behind, the server serving.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labagent.api.http import Server
from labagent.api.limits import Limits
from labagent.client import Client, UnixConnection
from labagent.containers.logs import read_frames
from labagent.engine import Engine
from labagent.server import serve

from .conftest import docker_save, tar_bytes

Serve = Callable[..., Server]


@pytest.fixture
def served(tmp_path: Path, engine: Engine) -> Iterator[Serve]:
    """Start the real server with the given Limits fields; stopped (and containers removed) after."""
    servers: list[Server] = []

    def start(**limits: float) -> Server:
        server = serve(tmp_path / f"run{len(servers)}" / "engine.sock", engine, Limits(**limits))  # type: ignore[arg-type]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    for c in engine.containers.running():
        engine.lifecycle.remove(c.id, force=True)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after the reply

    @property
    def message(self) -> str:
        assert self.headers.get("content-type") == "application/json", self
        return str(json.loads(self.body)["message"])


def path_of(server: Server) -> str:
    return str(server.server_address)


def connect(server: Server, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    sock.connect(path_of(server))
    return sock


def read_reply(sock: socket.socket) -> Reply:
    """One reply with a Content-Length body, then whether the connection was closed after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a reply: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "reply body cut short"
        body += chunk
    try:
        closed = body[length:] == b"" and sock.recv(1) == b""
    except TimeoutError:
        closed = False
    except ConnectionResetError:
        closed = True
    return Reply(status, headers, body[:length], closed)


def exchange(server: Server, data: bytes, timeout: float = 5.0) -> Reply:
    sock = connect(server, timeout)
    try:
        try:
            sock.sendall(data)
        except BrokenPipeError:  # refused before all was sent: the reply is still there to read
            pass
        return read_reply(sock)
    finally:
        sock.close()


def refused(reply: Reply, status: int, words: str) -> None:
    assert reply.status == status, reply
    assert words in reply.message, reply
    assert reply.closed, "the connection must be closed after a framing error"


PING = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
LAST_PING = b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def create_request(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return b"POST /containers/create?name=evil HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + \
        head.encode() + b"\r\n" + body


CREATE = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()


# 1. request heads ---------------------------------------------------------------------
def _fields(count: int, size: int) -> bytes:
    return b"".join(b"X-F%d: %s\r\n" % (i, b"v" * size) for i in range(count))


@pytest.mark.parametrize("data, status, words", [
    (b"GET /_ping?q=" + b"a" * (17 << 10) + b" HTTP/1.1\r\n\r\n", 414, "request line exceeds 16384"),
    (b"GET /_ping HTTP/1.1\r\n" + _fields(101, 1) + b"\r\n", 431, "too many header fields (limit 100)"),
    (b"GET /_ping HTTP/1.1\r\n" + _fields(9, 8000) + b"\r\n", 431, "header fields exceed 65536 bytes"),
    (b"GET /_ping HTTP/1.1\r\nX-Big: " + b"v" * (70 << 10) + b"\r\n\r\n", 431, "exceed 65536"),
    (b"GET /_ping HTTP/1.1\r\nHost: x\r\n folded: in\r\n\r\n", 400, "folded"),
    (b"GET /_ping HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header fields line"),
    (b"GET /_ping HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header fields line"),
    (b"GET /_ping HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400, "control character"),
    (b"GET /_ping HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\n", 400, "control character"),
    (b"GET /_ping HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 is not supported"),
    (b"GET /_ping HTTP/0.9\r\n\r\n", 400, "HTTP/0.9 is not supported"),
    (b"GET  /_ping HTTP/1.1\r\n\r\n", 400, "malformed request line"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "malformed request line"),
    (b"BREW /_ping HTTP/1.1\r\nHost: x\r\n\r\n", 501, "unsupported method BREW"),
])
def test_oversized_or_malformed_heads_get_a_json_error_and_a_close(served: Serve, data: bytes, status: int,
                                                                    words: str) -> None:
    server = served()
    refused(exchange(server, data), status, words)
    assert exchange(server, LAST_PING).body == b"OK"  # and the server goes on serving


def test_heads_within_the_bounds_are_served_and_kept_alive(served: Serve) -> None:
    server = served()
    sock = connect(server, timeout=0.2)
    big = b"GET /_ping?q=" + b"a" * (15 << 10) + b" HTTP/1.1\r\nHost: x\r\n" + _fields(98, 400) + b"\r\n"
    for data in (big, PING, b"\r\n" + PING):  # an empty line before a request line is tolerated
        sock.sendall(data)
        reply = read_reply(sock)  # its `closed` check reads the next reply's first byte: none
        assert reply.status == 200 and reply.body == b"OK" and not reply.closed
    sock.close()


# 2. body framing ----------------------------------------------------------------------
@pytest.mark.parametrize("headers, status, words", [
    (["Content-Length: -1"], 400, "invalid Content-Length '-1'"),
    (["Content-Length: abc"], 400, "invalid Content-Length"),
    (["Content-Length: +49"], 400, "invalid Content-Length '+49'"),
    (["Content-Length: 4_9"], 400, "invalid Content-Length '4_9'"),
    (["Content-Length: 0x31"], 400, "invalid Content-Length"),
    (["Content-Length: 49, 50"], 400, "conflicting Content-Length values: 49, 50"),
    (["Content-Length: 49", "Content-Length: 50"], 400, "conflicting Content-Length"),
    (["Content-Length: " + "9" * 30], 400, "invalid Content-Length"),
    (["Content-Length: 99999999999999999999"], 413, "exceeds the limit"),
    (["Transfer-Encoding: chunked", "Content-Length: 49"], 400, "both Transfer-Encoding and Content-Length"),
    (["Content-Length: 49", "Transfer-Encoding: chunked"], 400, "ambiguous"),
    (["Transfer-Encoding: gzip, chunked"], 501, "unsupported Transfer-Encoding"),
    (["Transfer-Encoding: xchunked"], 501, "unsupported Transfer-Encoding"),
    (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], 501, "unsupported Transfer-Encoding"),
])
def test_bad_or_ambiguous_body_framing_is_refused(served: Serve, engine: Engine, headers: list[str],
                                                  status: int, words: str) -> None:
    server = served()
    reply = exchange(server, create_request(CREATE, *headers))
    refused(reply, status, words)
    assert engine.containers.all() == []


def test_identical_repeated_lengths_are_one_length(served: Serve, engine: Engine) -> None:
    reply = exchange(served(), create_request(CREATE, f"Content-Length: {len(CREATE)}, {len(CREATE)}"))
    assert reply.status == 201 and [c.name for c in engine.containers.all()] == ["evil"]


def test_a_smuggled_request_is_never_answered(served: Serve) -> None:
    """TE + CL in one request: whichever a proxy believed, the engine must not serve the rest."""
    smuggled = b"0\r\n\r\nGET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
    data = create_request(smuggled, "Transfer-Encoding: chunked", f"Content-Length: {len(smuggled)}")
    sock = connect(served())
    sock.sendall(data)
    rest = b""
    try:
        while chunk := sock.recv(65536):
            rest += chunk
    except ConnectionResetError:
        pass
    assert rest.startswith(b"HTTP/1.1 400") and rest.count(b"HTTP/1.1") == 1 and b"OK" not in rest


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(pieces)


@pytest.mark.parametrize("body, status, words", [
    (b"-1\r\nx\r\n0\r\n\r\n", 400, "invalid chunk size line"),
    (b"0x10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", 400, "invalid chunk size line"),
    (b"+10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", 400, "invalid chunk size line"),
    (b"zz\r\n\r\n", 400, "invalid chunk size line"),
    (b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", 400, "invalid chunk size line"),
    (b"1" * 17 + b"\r\n", 400, "invalid chunk size line"),
    (b"ffffffffffffffff\r\n", 413, "exceeds the limit of 4194304 bytes"),
    (b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n", 400, "chunk size line exceeds 4096"),
    (b"5;a=\x00\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk size line"),
    (b"".join(b"1;" + b"e" * 1000 + b"\r\n{\r\n" for _ in range(40)), 400, "mostly framing"),
    (b"5\r\nhelloXX0\r\n\r\n", 400, "chunk data is not followed by CRLF"),
    (b"5\nhello\r\n0\r\n\r\n", 400, "does not end with CRLF"),
    (b"0\r\n" + _fields(101, 1) + b"\r\n", 431, "too many trailer fields"),
    (b"0\r\n" + _fields(10, 8000) + b"\r\n", 431, "trailer fields exceed"),
])
def test_hostile_chunked_bodies_are_refused(served: Serve, engine: Engine, body: bytes, status: int,
                                            words: str) -> None:
    server = served()
    refused(exchange(server, create_request(body, "Transfer-Encoding: chunked")), status, words)
    assert engine.containers.all() == []
    assert exchange(server, LAST_PING).body == b"OK"


def test_chunk_extensions_and_trailers_within_bounds_are_accepted(served: Serve, engine: Engine) -> None:
    server = served()
    sock = connect(server)
    half = len(CREATE) // 2
    body = (b"%x ; name=\"v\"\r\n%s\r\n%X\r\n%s\r\n0\r\nX-Checksum: none\r\n\r\n"
            % (half, CREATE[:half], len(CREATE) - half, CREATE[half:]))
    sock.sendall(create_request(body, "Transfer-Encoding: chunked") + PING)
    first = read_reply(sock)  # its `closed` check reads the first byte of the ping's reply
    assert first.status == 201 and not first.closed, first
    assert [c.name for c in engine.containers.all()] == ["evil"]
    sock.close()


def test_json_bodies_are_bounded_before_they_are_read(served: Serve, engine: Engine) -> None:
    server = served(max_json_body=1024)
    sock = connect(server)
    sock.sendall(create_request(b"", "Content-Length: 2048"))  # the head alone: nothing is read
    refused(read_reply(sock), 413, "request body of 2048 bytes exceeds the limit of 1024 bytes")
    big = json.dumps({"Image": "busybox", "Env": ["A=" + "x" * 2000]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)
    refused(exchange(server, create_request(chunked, "Transfer-Encoding: chunked")), 413, "limit of 1024")
    assert engine.containers.all() == []


def test_expect_100_continue_is_answered_only_for_a_body_within_bounds(served: Serve, engine: Engine) -> None:
    """curl asks before a large upload: the engine says 100 only once it will read the body."""
    server = served(max_json_body=1024)
    sock = connect(server)
    sock.sendall(create_request(b"", f"Content-Length: {len(CREATE)}", "Expect: 100-continue"))
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(CREATE)
    assert read_reply(sock).status == 201
    sock.close()
    sock = connect(server)
    sock.sendall(create_request(b"", "Content-Length: 5000", "Expect: 100-continue"))
    refused(read_reply(sock), 413, "exceeds the limit of 1024 bytes")
    assert [c.name for c in engine.containers.all()] == ["evil"]


def test_uploads_are_bounded_and_leave_nothing_behind(served: Serve, engine: Engine) -> None:
    server = served(max_upload=64 << 10)
    with engine.images.exclusive():  # the background busybox build stages blobs in tmp too: let it end
        pass
    archive = docker_save([tar_bytes({"big": b"\0" * (100 << 10)})], ["big:1"])
    head = b"POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
    refused(exchange(server, head + b"Content-Length: %d\r\n\r\n" % len(archive) + archive), 413,
            f"request body of {len(archive)} bytes exceeds the limit of 65536 bytes")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(archive[i:i + 8192]), archive[i:i + 8192])
                      for i in range(0, len(archive), 8192))
    refused(exchange(server, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"), 413,
            "exceeds the limit of 65536 bytes")
    assert list(engine.images.tmp.iterdir()) == []
    assert sorted(t for i in engine.images.images() for t in i.tags) == ["busybox:latest"]
    small = docker_save([tar_bytes({"small": b"x"})], ["small:1"])  # under the cap: loaded
    reply = exchange(server, head + b"Content-Length: %d\r\n\r\n" % len(small) + small)
    assert reply.status == 200 and "small:1" in [t for i in engine.images.images() for t in i.tags]  # chunked reply


# 3. timeouts --------------------------------------------------------------------------
def _until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    start, data = time.monotonic(), b""
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


def test_a_stalled_request_head_is_dropped_with_408(served: Serve) -> None:
    server = served(head_timeout=0.5)
    sock = connect(server)
    sock.sendall(b"GET /_pi")
    data, waited = _until_closed(sock, 5)
    assert waited < 2 and data.startswith(b"HTTP/1.1 408") and b"not received within 0.5 s" in data


def test_a_trickled_head_is_cut_at_its_deadline(served: Serve) -> None:
    """One byte every 0.1 s never trips a per-read timeout; the head's deadline still holds."""
    server = served(head_timeout=0.6, io_timeout=0.5, idle_timeout=0.5)
    sock = connect(server)
    start = time.monotonic()
    sock.settimeout(0.1)
    data = b""
    for byte in (b"GET /_ping HTTP/1.1\r\nX-Slow: " + b"s" * 100):
        try:
            sock.send(bytes([byte]))
            data += sock.recv(65536)
            break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    assert time.monotonic() - start < 2
    assert data.startswith(b"HTTP/1.1 408")


def test_an_idle_kept_alive_connection_is_closed_quietly(served: Serve) -> None:
    server = served(idle_timeout=0.4)
    sock = connect(server)
    sock.sendall(PING)
    start = time.monotonic()
    reply = read_reply(sock)  # its `closed` check waits out the idle timeout
    assert reply.body == b"OK" and reply.closed and 0.3 < time.monotonic() - start < 2
    assert _eventually(lambda: server.active == 0)


def test_a_stalled_body_is_dropped(served: Serve, engine: Engine) -> None:
    server = served(io_timeout=0.4)
    sock = connect(server)
    sock.sendall(create_request(CREATE[:10], f"Content-Length: {len(CREATE)}"))
    data, waited = _until_closed(sock, 5)
    assert waited < 2 and data.startswith(b"HTTP/1.1 408") and b"stalled" in data
    assert engine.containers.all() == []


def test_long_streams_outlive_every_timeout(served: Serve) -> None:
    """wait, logs -f, attach and exec hold a quiet connection far past the timeouts."""
    server = served(idle_timeout=0.3, head_timeout=0.3, io_timeout=0.3)
    client = Client(path_of(server))

    def run(name: str, script: str) -> str:
        cid = client.json("POST", "/containers/create", {"name": name},
                          {"Image": "busybox", "Cmd": ["sh", "-c", script]})["Id"]
        client.request("POST", f"/containers/{cid}/start").read()
        return str(cid)

    run("waiter", "sleep 1; exit 3")
    assert client.json("POST", "/containers/waiter/wait") == {"StatusCode": 3, "Error": None}
    run("follower", "echo a; sleep 1; echo b")
    followed = b"".join(d for _, d in client.frames("GET", "/containers/follower/logs",
                                                    {"stdout": 1, "follow": 1}))
    assert followed == b"a\nb\n"
    run("attached", "sleep 0.2; sleep 1; echo late")
    sock = connect(server)
    sock.sendall(b"POST /containers/attached/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
                 b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    data, _ = _until_closed(sock, 10)
    head, _, stream = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101") and _frames(stream) == [(1, b"late\n")]
    run("execbox", "sleep 30")
    eid = client.json("POST", "/containers/execbox/exec", body={"Cmd": ["sh", "-c", "sleep 1; echo done"]})["Id"]
    conn = UnixConnection(path_of(server))
    conn.request("POST", f"/exec/{eid}/start", body=b'{"Detach": false}', headers={"Content-Type": "application/json"})
    assert _frames(conn.getresponse().read()) == [(1, b"done\n")]


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    buf = bytearray(data)

    def read(n: int) -> bytes:
        piece = bytes(buf[:n])
        del buf[:n]
        return piece

    return list(read_frames(read))


def _eventually(check: Callable[[], bool], limit: float = 3.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# 4. the connection cap ----------------------------------------------------------------
def test_connections_beyond_the_cap_get_503_and_a_close(served: Serve) -> None:
    server = served(max_connections=3, idle_timeout=30)
    held = [connect(server) for _ in range(3)]  # silent clients, each holding a worker
    assert _eventually(lambda: server.active == 3)
    start = time.monotonic()
    refused(exchange(server, LAST_PING), 503, "serving 3 connections, its limit")
    silent = connect(server)  # one that sends nothing is answered too, not left hanging
    data, _ = _until_closed(silent, 5)
    assert data.startswith(b"HTTP/1.1 503") and time.monotonic() - start < 2
    held.pop().close()
    assert _eventually(lambda: server.active == 2)
    assert exchange(server, LAST_PING).body == b"OK"
    for sock in held:
        sock.close()


def test_worker_threads_are_reused_under_the_cap(served: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    server = served(max_connections=4)
    workers: set[int] = set()
    serve_one = Server.process_request_thread

    def recording(self: Server, request: socket.socket, address: object) -> None:
        workers.add(threading.get_ident())
        serve_one(self, request, address)

    monkeypatch.setattr(Server, "process_request_thread", recording)
    for _ in range(30):
        conn = UnixConnection(path_of(server))
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
        conn.close()
    assert 1 <= len(workers) <= 10  # one thread per connection would be 30 (a closing one may linger)
    assert _eventually(lambda: server.active == 0)
