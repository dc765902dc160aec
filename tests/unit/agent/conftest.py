"""Fixtures: an engine with fake kernel seams, served on a real unix socket in tmp_path."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from labagent.client import Client
from labagent.engine import Engine, Seams
from labagent.server import serve

from .fakes import FakeMounter, FakeNetwork, RecordingWhiteouts, make_seams

__all__ = ["FakeMounter", "FakeNetwork", "RecordingWhiteouts"]


def tar_bytes(files: dict[str, bytes | None]) -> bytes:
    """A tar with regular files (bytes) and directories (None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_save(layers: list[bytes], tags: list[str], cmd: list[str] | None = None) -> bytes:
    """A docker-save tarball: manifest.json, <hex>.json config, <dir>/layer.tar."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "config": {"Cmd": cmd or ["sh"], "Env": ["FROM_IMAGE=1"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]}}).encode()
    files: dict[str, bytes | None] = {f"{sha(config)[7:]}.json": config}
    names = []
    for layer in layers:
        names.append(f"{sha(layer)[7:]}/layer.tar")
        files[names[-1]] = layer
    files["manifest.json"] = json.dumps([{"Config": f"{sha(config)[7:]}.json", "RepoTags": tags,
                                          "Layers": names}]).encode()
    return tar_bytes(files)


@pytest.fixture
def fake_busybox(tmp_path: Path) -> Path:
    path = tmp_path / "busybox"
    path.write_text("#!/bin/sh\necho sh; echo ls; echo cat; echo busybox\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def seams(tmp_path: Path, fake_busybox: Path) -> Seams:
    return make_seams(tmp_path)


@pytest.fixture
def engine(tmp_path: Path, seams: Seams) -> Engine:
    eng = Engine(tmp_path / "root", seams)
    eng.startup()
    return eng


@pytest.fixture
def client(tmp_path: Path, engine: Engine) -> Iterator[Client]:
    sock = tmp_path / "run" / "engine.sock"
    server = serve(sock, engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Client(str(sock))
    server.shutdown()
    server.server_close()
    for c in engine.containers.running():
        try:
            engine.lifecycle.remove(c.id, force=True)
        except Exception:
            pass


@pytest.fixture
def can_mknod(tmp_path: Path) -> bool:
    try:
        os.mknod(tmp_path / "probe", 0o020000, os.makedev(0, 0))
    except OSError:
        return False
    return True
