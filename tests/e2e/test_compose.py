"""Debian's docker-compose (1.29) drives node1 of the shared two-node lab, unchanged.

Two services on a named network share a named volume; the client reaches the server by its
service name. `up -d`, `ps`, `logs`, `exec` and `down -v` work and leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Lab

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("docker-compose") is None, reason="setup.sh --dev installs it")]
PROJECT = Path(__file__).parent / "compose"


@pytest.fixture(scope="module")
def compose_env(lab: Lab, two_node: str) -> Iterator[dict[str, str]]:
    out = lab("docker-env", "two-node", "node1").stdout
    host = out.split("DOCKER_HOST=", 1)[1].split()[0].strip("'\"")
    yield {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")} | {"DOCKER_HOST": host}
    lab("docker-env", "--unset", "two-node", "node1", check=False)


def compose(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker-compose", "-p", "e2e", *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def test_a_two_service_project_comes_up_talks_by_name_and_goes(lab: Lab, compose_env: dict[str, str]) -> None:
    try:
        compose(compose_env, "up", "-d")
        ps = compose(compose_env, "ps").stdout
        assert "e2e_server_1" in ps and "e2e_client_1" in ps
        deadline = time.monotonic() + 120
        while "hello-from-the-volume" not in compose(compose_env, "logs", "client").stdout:
            assert time.monotonic() < deadline, compose(compose_env, "logs").stdout
            time.sleep(2)
        fetched = compose(compose_env, "exec", "-T", "client", "cat", "/data/fetched").stdout
        assert fetched.strip() == "hello-from-the-volume"
    finally:
        compose(compose_env, "down", "-v", check=False)
    names = lab("docker", "two-node", "node1", "--", "ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert not [n for n in names if n.startswith("e2e_")]
    networks = lab("docker", "two-node", "node1", "--", "network", "ls", "--format", "{{.Name}}").stdout.split()
    volumes = lab("docker", "two-node", "node1", "--", "volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert "e2e_back" not in networks and "e2e_shared" not in volumes
