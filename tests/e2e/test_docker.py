"""The host's real docker CLI and docker-py drive a node's engine over the lab's SSH."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    subprocess.run(["which", "docker"], capture_output=True).returncode != 0, reason="no docker CLI on the host")]


def docker(lab: Lab, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, **env)
    return lab("docker", "two-node", "node1", "--", *args, check=check, env=environment, timeout=600)


def test_cli_basics(lab: Lab, two_node: str) -> None:
    assert docker(lab, "version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.43"
    assert "web" in docker(lab, "ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "busybox" in docker(lab, "images", "--format", "{{.Repository}}").stdout.split()
    assert "Containers" in docker(lab, "info").stdout


def test_foreground_run_prints_output_and_returns_the_exit_code(lab: Lab, two_node: str) -> None:
    assert docker(lab, "run", "--rm", "busybox", "echo", "hello").stdout.strip() == "hello"
    failed = docker(lab, "run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 7", check=False)
    assert failed.returncode == 7 and "oops" in failed.stderr


def test_detached_run_with_limits_logs_exec_and_teardown(lab: Lab, two_node: str) -> None:
    docker(lab, "run", "-d", "--name", "dk", "-p", "8081:80", "-e", "GREETING=hi", "--memory", "48m",
           "--cpus", "0.5", "--pids-limit", "30", "busybox", "sh", "-c",
           "for i in 1 2 3 4 5; do echo line$i; done; echo $GREETING; exec httpd -f -p 80")
    try:
        config = json.loads(docker(lab, "inspect", "dk").stdout)[0]["HostConfig"]
        assert config["Memory"] == 48 * 2**20 and config["NanoCpus"] == 500_000_000 and config["PidsLimit"] == 30
        deadline = time.monotonic() + 30
        while "hi" not in docker(lab, "logs", "dk").stdout and time.monotonic() < deadline:
            time.sleep(1)
        assert docker(lab, "logs", "--tail", "2", "dk").stdout.split() == ["line5", "hi"]
        assert docker(lab, "exec", "dk", "sh", "-c", "exit 4", check=False).returncode == 4
        assert docker(lab, "exec", "dk", "hostname").stdout.strip() == "dk"
        docker(lab, "kill", "dk")
        assert docker(lab, "wait", "dk").stdout.strip() == "137"
    finally:
        docker(lab, "rm", "-f", "dk", check=False)
    missing = docker(lab, "inspect", "dk", check=False)
    assert missing.returncode != 0 and "No such" in missing.stderr


def test_pull_explains_how_to_get_images(lab: Lab, two_node: str) -> None:
    pulled = docker(lab, "pull", "alpine", check=False)
    assert pulled.returncode != 0
    assert "docker load" in pulled.stderr and "lab image push" in pulled.stderr


def test_build_adds_layers_and_a_second_build_reuses_them(lab: Lab, two_node: str, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for context, last in ((first, 'CMD ["cat", "/one", "/two"]'), (second, 'CMD ["echo", "second"]')):
        context.mkdir()
        (context / "Dockerfile").write_text(
            f"FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n{last}\n")
    built = docker(lab, "build", "-t", "first", str(first), DOCKER_BUILDKIT="0")
    assert "Successfully tagged first:latest" in built.stdout
    again = docker(lab, "build", "-t", "second", str(second), DOCKER_BUILDKIT="0")
    assert again.stdout.count("Using cache") >= 2
    assert docker(lab, "run", "--rm", "first").stdout.split() == ["one", "two"]
    layers = {
        name: json.loads(docker(lab, "image", "inspect", name).stdout)[0]["RootFS"]["Layers"]
        for name in ("busybox", "first", "second")
    }
    assert len(layers["first"]) == len(layers["busybox"]) + 2
    assert layers["first"] == layers["second"]  # the same layer directories on disk
    on_disk = lab("exec", "two-node", "node1", "--",
                  "sudo ls /var/lib/lab-agent/layers | wc -l").stdout.strip()
    assert int(on_disk) >= len(layers["first"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Dockerfile").write_text("FROM busybox\nFROBNICATE now\n")
    failed = docker(lab, "build", str(bad), check=False, DOCKER_BUILDKIT="0")
    assert failed.returncode != 0 and "line 2" in failed.stdout + failed.stderr


def test_docker_py_through_docker_env(lab: Lab, two_node: str) -> None:
    env = lab("docker-env", "two-node", "node1").stdout
    host = env.split("DOCKER_HOST=", 1)[1].split()[0].strip("'\"")
    try:
        code = ("import docker, sys; c = docker.DockerClient(base_url=sys.argv[1]); "
                "print(c.containers.run('busybox', ['echo', 'from-docker-py'], remove=True).decode().strip()); "
                "print([x.name for x in c.containers.list()])")
        done = subprocess.run([sys.executable, "-c", code, host], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "from-docker-py" and "web" in lines[1]
    finally:
        lab("docker-env", "--unset", "two-node", "node1", check=False)


def test_a_client_killed_mid_logs_follow_leaves_the_engine_healthy(lab: Lab, two_node: str) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "provisioner.cli", "docker", "two-node", "node1", "--", "logs", "-f", "web"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(5)
    follower.send_signal(signal.SIGKILL)
    follower.wait(timeout=30)
    assert docker(lab, "ps", "--format", "{{.Names}}").stdout.split().count("web") == 1
    assert docker(lab, "run", "--rm", "busybox", "true").returncode == 0
