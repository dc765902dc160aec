"""A fake-seam engine in a subprocess (fakeengine.py) and helpers to point docker clients at it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOCKER = shutil.which("docker")


@dataclass
class EngineProcess:
    proc: subprocess.Popen[bytes]
    base: Path

    @property
    def socket(self) -> Path:
        return self.base / "run" / "engine.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return {**env, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.base / "docker-config"),
                "DOCKER_CLI_HINTS": "false", **extra}

    def docker(self, *args: str, timeout: float = 20, stdin: bytes | None = None,
               **env: str) -> subprocess.CompletedProcess[str]:
        assert DOCKER, "docker CLI missing"
        out = subprocess.run([DOCKER, *args], env=self.env(**env), input=stdin, capture_output=True,
                             timeout=timeout, check=False)
        return subprocess.CompletedProcess(out.args, out.returncode, out.stdout.decode(), out.stderr.decode())

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        assert DOCKER
        return subprocess.Popen([DOCKER, *args], env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_engine(base: Path, timeout: float = 20) -> EngineProcess:
    """Start fakeengine.py and wait for its socket; its log goes to base/engine.log."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "engine.log", "wb") as log:  # labagent is installed in the venv (setup.sh --dev)
        proc = subprocess.Popen([sys.executable, str(HERE / "fakeengine.py"), str(base)],
                                stdout=subprocess.DEVNULL, stderr=log)
    engine = EngineProcess(proc, base)
    deadline = time.monotonic() + timeout
    while not engine.socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise RuntimeError(f"fake engine did not start: {(base / 'engine.log').read_text()}")
        time.sleep(0.05)
    return engine


def until(check: object, timeout: float = 10, step: float = 0.1) -> bool:
    """Poll check() until it is true or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


def docker_client(eng: EngineProcess, volumes: bool = False) -> Iterator[Any]:
    """The body of the modules' `sdk` fixtures: a docker-py client on eng (the API version
    autodetected), then the containers (and with volumes=True the volumes) a test left removed."""
    import docker

    client = docker.DockerClient(base_url=eng.host, timeout=15)
    yield client
    for c in client.containers.list(all=True):
        c.remove(force=True)
    if volumes:
        for v in client.volumes.list():
            v.remove(force=True)
    client.close()
