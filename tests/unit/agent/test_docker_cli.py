"""The real docker CLI (client 28.x) against the engine served with fake seams."""

from __future__ import annotations

import json
import signal
import time

import pytest

from .conftest import docker_save, tar_bytes
from .dockerhost import DOCKER, EngineProcess, start_engine, until

pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("docker"))
    yield engine
    engine.docker("rm", "-f", *engine.docker("ps", "-aq").stdout.split())
    engine.stop()


def test_version_info_images_ps(eng: EngineProcess) -> None:
    out = eng.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Version}}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1.43", "0.1.0"]
    assert "Cgroup Version: 2" in eng.docker("info").stdout
    images = eng.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "busybox:latest" in images
    assert eng.docker("ps", "-a").returncode == 0


def test_foreground_run_attaches_output_and_returns_the_exit_code(eng: EngineProcess) -> None:
    out = eng.docker("run", "--name", "fg", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")
    assert eng.docker("run", "--rm", "busybox", "echo", "gone").stdout == "gone\n"
    assert "fg" in eng.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_detached_run_with_limits_logs_exec_stop_wait(eng: EngineProcess) -> None:
    out = eng.docker("run", "-d", "--name", "web", "-p", "18080:80", "-e", "GREETING=hi", "--memory", "64m",
                     "--cpus", "0.5", "--pids-limit", "50", "busybox", "sh", "-c",
                     "echo $GREETING; echo two; echo three; sleep 30")
    assert out.returncode == 0, out.stderr
    cid = out.stdout.strip()
    assert len(cid) == 64
    ps = eng.docker("ps", "--format", "{{.Names}} {{.Ports}}").stdout
    assert "web 0.0.0.0:18080->80/tcp" in ps
    fmt = "{{.State.Status}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
    assert eng.docker("inspect", "-f", fmt, cid[:12]).stdout.split() == ["running", "67108864", "500000000", "50"]
    assert until(lambda: eng.docker("logs", "web").stdout == "hi\ntwo\nthree\n")
    assert eng.docker("logs", "--tail", "1", "web").stdout == "three\n"
    ex = eng.docker("exec", "web", "sh", "-c", "echo inside; echo bad >&2; exit 4")
    assert (ex.returncode, ex.stdout, ex.stderr) == (4, "inside\n", "bad\n")
    assert eng.docker("stop", "-t", "1", "web").stdout.strip() == "web"
    assert eng.docker("wait", "web").stdout.strip() == "143"
    assert eng.docker("rm", "web").returncode == 0


def test_kill_wait_and_forced_remove(eng: EngineProcess) -> None:
    cid = eng.docker("run", "-d", "--name", "k", "busybox", "sleep", "30").stdout.strip()
    busy = eng.docker("rm", "k")
    assert busy.returncode != 0 and "Stop the container before attempting removal" in busy.stderr
    waiter = eng.spawn("wait", "k")  # held open until the exit
    time.sleep(0.5)
    assert waiter.poll() is None
    assert eng.docker("kill", "k").returncode == 0
    assert waiter.communicate(timeout=10)[0].decode().strip() == "137"
    assert eng.docker("rm", "-f", cid).returncode == 0
    assert eng.docker("inspect", "k").returncode != 0


def test_docker_style_errors(eng: EngineProcess) -> None:
    missing = eng.docker("inspect", "--type", "container", "nosuch")
    assert missing.returncode != 0 and "No such container: nosuch" in missing.stderr
    noimg = eng.docker("run", "--rm", "nosuchimage")
    assert noimg.returncode != 0 and "nosuchimage" in noimg.stderr
    pull = eng.docker("pull", "alpine")
    assert pull.returncode != 0
    assert "docker load" in pull.stderr and "lab image push" in pull.stderr


def test_load_image_inspect_rmi(eng: EngineProcess, tmp_path) -> None:
    tarball = tmp_path / "img.tar"
    tarball.write_bytes(docker_save([tar_bytes({"hello.txt": b"hi"})], ["mine:1"]))
    out = eng.docker("load", "-i", str(tarball))
    assert out.returncode == 0 and "Loaded image: mine:1" in out.stdout, out.stderr
    data = json.loads(eng.docker("image", "inspect", "mine:1").stdout)
    assert data[0]["RepoTags"] == ["mine:1"] and len(data[0]["RootFS"]["Layers"]) == 1
    assert "Untagged: mine:1" in eng.docker("rmi", "mine:1").stdout
    assert "mine" not in eng.docker("images").stdout


@pytest.mark.parametrize("verb", ["logs", "attach"])
def test_client_killed_mid_stream_leaves_the_engine_healthy(eng: EngineProcess, verb: str) -> None:
    name = f"chatty-{verb}"
    eng.docker("run", "-d", "--name", name, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.1; done")
    before = eng.threads()
    args = ["logs", "-f", name] if verb == "logs" else ["attach", "--no-stdin", name]
    clients = [eng.spawn(*args) for _ in range(3)]
    for client in clients:
        assert client.stdout is not None
        assert client.stdout.readline() == b"tick\n"
    for client in clients:
        client.send_signal(signal.SIGKILL)
        client.wait(5)
    assert until(lambda: eng.threads() <= before, timeout=10), "stream threads linger"
    assert eng.docker("version", "--format", "{{.Server.Version}}").stdout.strip() == "0.1.0"
    assert eng.docker("logs", "--tail", "1", name).stdout == "tick\n"
    assert eng.docker("rm", "-f", name).returncode == 0


def test_docker_build_uses_the_classic_builder_and_its_cache(eng: EngineProcess, tmp_path) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo built > made.txt\nCOPY hello.txt /app/\n")
    first = eng.docker("build", "-t", "built:1", str(tmp_path), timeout=60, DOCKER_BUILDKIT="0")
    assert first.returncode == 0, first.stderr
    assert "Step 3/3 : COPY hello.txt /app/" in first.stdout and "Successfully tagged built:1" in first.stdout
    again = eng.docker("build", "-t", "built:2", str(tmp_path), timeout=60, DOCKER_BUILDKIT="0")
    assert again.stdout.count("Using cache") == 2
    layers = json.loads(eng.docker("image", "inspect", "built:1", "built:2").stdout)
    assert layers[0]["RootFS"]["Layers"] == layers[1]["RootFS"]["Layers"] and len(layers[0]["RootFS"]["Layers"]) == 3
    (tmp_path / "Dockerfile").write_text("FROM busybox\nBOGUS x\n")
    bad = eng.docker("build", str(tmp_path), timeout=60, DOCKER_BUILDKIT="0")
    assert bad.returncode != 0 and "line 2: unknown instruction 'BOGUS'" in bad.stderr
