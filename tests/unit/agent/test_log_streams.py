"""Logs and attach stream a container's log from disk: same bytes as before, bounded memory.

The reference below is the former implementation (every entry read into a list, a deque for
--tail, the whole body joined), kept here to prove the streamed output identical to it.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labagent.client import Client, UnixConnection
from labagent.containers.logs import BLOCK, MAX_RECORD, Entry, LogFile, _parse, frame
from labagent.engine import Engine
from labagent.fsutil import parse_rfc3339, rfc3339
from labagent.server import serve

T0 = 1_700_000_000.0


def reference_entries(path: Path, tail: int | None = None, since: float = 0) -> list[Entry]:
    entries: deque[Entry] | list[Entry] = deque(maxlen=tail) if tail is not None else []
    with open(path, "rb") as handle:
        while True:
            line = handle.readline()
            if not line.endswith(b"\n"):
                break
            entry = _parse(line)
            if entry and (not since or parse_rfc3339(entry.time) >= since):
                entries.append(entry)
    return list(entries)


def reference_body(entries: list[Entry], stdout: bool, stderr: bool, timestamps: bool) -> bytes:
    out = []
    for e in entries:
        if (e.stream == 1 and not stdout) or (e.stream == 2 and not stderr):
            continue
        out.append(frame(e.stream, (e.time.encode() + b" " if timestamps else b"") + e.data))
    return b"".join(out)


def record(i: int, text: str, stream: str = "stdout") -> bytes:
    return json.dumps({"log": text, "stream": stream, "time": rfc3339(T0 + i * 0.5)}).encode() + b"\n"


def write_mixed_log(path: Path, count: int = 3000, seed: int = 7) -> None:
    """Records of many lengths (so they straddle BLOCK boundaries), both streams, junk lines, and a
    last record still being written."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        for i in range(count):
            size = rng.choice([0, 1, 10, 100, 3000, BLOCK - 50, BLOCK + 7]) if i % 97 == 0 else rng.randrange(80)
            out.write(record(i, f"{i}:" + "é" * (size // 4) + "x" * size + "\n", rng.choice(["stdout", "stderr"])))
            if i % 500 == 250:
                out.write(b"not json at all\n")
        out.write(b'{"log": "half a rec')


@pytest.fixture
def served(tmp_path: Path, engine: Engine) -> Iterator[tuple[Client, str]]:
    server = serve(tmp_path / "run" / "engine.sock", engine)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    client = Client(str(server.server_address))
    cid = client.json("POST", "/containers/create", {"name": "logged"}, {"Image": "busybox", "Cmd": ["true"]})["Id"]
    yield client, cid
    server.shutdown()
    server.server_close()


def log_path(engine: Engine, cid: str) -> Path:
    return engine.containers.logfile(cid).path


def get_logs(client: Client, query: str) -> bytes:
    conn = UnixConnection(client.path)
    conn.request("GET", f"/v1.43/containers/logged/logs?{query}")
    resp = conn.getresponse()
    assert resp.status == 200
    return resp.read()


def test_streamed_logs_are_byte_identical_to_the_former_ones(served: tuple[Client, str], engine: Engine) -> None:
    client, cid = served
    path = log_path(engine, cid)
    write_mixed_log(path)
    mid = T0 + 1000 * 0.5
    for tail in (None, 0, 1, 7, 500, 2999, 10**6):
        for since in (0.0, mid):
            entries = reference_entries(path, tail, since)
            for stdout, stderr, ts in ((1, 1, 0), (1, 0, 1), (0, 1, 0)):
                query = f"stdout={stdout}&stderr={stderr}&timestamps={ts}&since={since}"
                query += f"&tail={tail}" if tail is not None else ""
                assert get_logs(client, query) == reference_body(entries, bool(stdout), bool(stderr), bool(ts)), query
    everything = reference_body(reference_entries(path), True, True, False)
    assert get_logs(client, "stdout=1&stderr=1&tail=all") == everything
    assert get_logs(client, "stdout=1&stderr=1&tail=-1") == everything  # Docker: negative is all (was a 500)


def test_tail_start_matches_the_former_tail_for_every_count(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_mixed_log(path, count=400, seed=3)
    log = LogFile(path)
    for tail in range(0, 410, 3):
        for since in (0.0, T0 + 100.0):
            entries, _ = log.read(offset=log.tail_start(tail, since), since=since)
            assert entries == reference_entries(path, tail, since), (tail, since)


def test_an_over_long_record_is_skipped_not_held(tmp_path: Path) -> None:
    """No record append() writes exceeds MAX_RECORD; a longer line is skipped by both readers."""
    path = tmp_path / "log"
    with open(path, "wb") as out:
        out.write(record(0, "before\n"))
        out.write(record(1, "x" * (MAX_RECORD + BLOCK * 3)))
        out.write(record(2, "after\n"))
    log = LogFile(path)
    tracemalloc.start()
    try:
        forward = [e.data for e in log.cursor().entries()]
        start = log.tail_start(2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert forward == [b"before\n", b"after\n"]
    assert [e.data for e in log.cursor(start).entries()] == [b"before\n", b"after\n"]
    assert peak < 2 * MAX_RECORD + 4 * BLOCK


def write_big_log(path: Path, size: int) -> None:
    line = "y" * 900 + "\n"
    with open(path, "wb") as out:
        i = 0
        while out.tell() < size:
            out.write(b"".join(record(i + k, f"{i + k} {line}", "stderr" if k % 3 else "stdout")
                               for k in range(1000)))
            i += 1000


def _stream_digest(read: Callable[[int], bytes]) -> tuple[str, int]:
    digest, total = hashlib.sha256(), 0
    while piece := read(1 << 16):
        digest.update(piece)
        total += len(piece)
    return digest.hexdigest(), total


def _rchar() -> int:
    """Bytes this process has read through read(2) and friends (page cache or not)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_large_log_streams_in_bounded_memory(served: tuple[Client, str], engine: Engine) -> None:
    client, cid = served
    path = log_path(engine, cid)
    write_big_log(path, 24 << 20)
    expected = hashlib.sha256(reference_body(reference_entries(path), True, True, True)).hexdigest()
    expected_attach = hashlib.sha256(reference_body(reference_entries(path), True, True, False)).hexdigest()
    tracemalloc.start()
    try:
        conn = UnixConnection(client.path)
        conn.request("GET", "/containers/logged/logs?stdout=1&stderr=1&timestamps=1")
        got, total = _stream_digest(conn.getresponse().read)
        logs_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(client.path)
        sock.sendall(b"POST /containers/logged/attach?logs=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = sock.makefile("rb")
        while reader.readline() not in (b"\r\n", b""):
            pass
        attached, _ = _stream_digest(reader.read)
        attach_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total > 20 << 20 and got == expected
    assert attached == expected_attach
    assert logs_peak < 4 << 20, f"logs held {logs_peak} bytes for a 24 MiB log"
    assert attach_peak < 4 << 20, f"attach held {attach_peak} bytes for a 24 MiB log"


def test_a_tail_reads_the_end_of_the_file_only(served: tuple[Client, str], engine: Engine) -> None:
    client, cid = served
    path = log_path(engine, cid)
    write_big_log(path, 24 << 20)
    expected = reference_body(reference_entries(path, 10), True, True, False)
    before = _rchar()
    assert get_logs(client, "stdout=1&stderr=1&tail=10") == expected
    assert _rchar() - before < 1 << 20  # a few blocks from the end, not 24 MiB
