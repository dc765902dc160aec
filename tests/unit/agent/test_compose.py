"""Debian's docker-compose (1.29, on the system python3 and its docker-py 5) against the real
engine server with fake seams.

The project (compose/docker-compose.yml) has two services on a named network sharing a named
volume, like tests/e2e/compose, but with commands that work without namespaces (fakecrun runs
container processes on the host). The tests run in file order on one project: each command a
user types, then `down -v` leaving nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .dockerhost import DOCKER, EngineProcess, start_engine, until

COMPOSE = shutil.which("docker-compose")
PROJECT = Path(__file__).resolve().parent / "compose"
docker = pytest.importorskip("docker")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="Debian's docker-compose is not installed")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("compose"))
    yield engine
    client = docker.DockerClient(base_url=engine.host, timeout=15)
    for c in client.containers.list(all=True):
        c.remove(force=True)
    client.close()
    engine.stop()


@pytest.fixture(scope="module")
def api(eng: EngineProcess) -> Iterator[Any]:
    client = docker.DockerClient(base_url=eng.host, timeout=15)
    yield client
    client.close()


def compose(eng: EngineProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert COMPOSE
    env = {k: v for k, v in eng.env().items() if not k.startswith("COMPOSE_")}
    # docker-compose runs on the system python3 with Debian's docker-py, never this venv's
    env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    done = subprocess.run([COMPOSE, "-p", "ut", *args], cwd=PROJECT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def project(api: Any, all: bool = True) -> dict[str, Any]:
    found = api.containers.list(all=all, filters={"label": "com.docker.compose.project=ut"})
    return {c.name: c for c in found}


def ids(api: Any) -> dict[str, str]:
    return {name: c.id for name, c in project(api).items()}


def test_up_creates_the_network_the_volume_and_both_services(eng: EngineProcess, api: Any) -> None:
    out = compose(eng, "up", "-d")
    assert 'Creating network "ut_back"' in out.stderr and 'Creating volume "ut_shared"' in out.stderr
    back, front = api.networks.get("ut_back"), api.networks.get("ut_front")
    assert back.attrs["Labels"]["com.docker.compose.network"] == "back"
    assert api.volumes.get("ut_shared").attrs["Labels"]["com.docker.compose.volume"] == "shared"
    running = project(api, all=False)
    assert set(running) == {"ut_server_1", "ut_client_1"}
    for service in ("server", "client"):
        c = running[f"ut_{service}_1"]
        labels = c.labels
        assert labels["com.docker.compose.project"] == "ut"
        assert labels["com.docker.compose.service"] == service
        assert labels["com.docker.compose.oneoff"] == "False"
        assert len(labels["com.docker.compose.config-hash"]) == 64
        aliases = c.attrs["NetworkSettings"]["Networks"]["ut_back"]["Aliases"]
        assert service in aliases and aliases.count(c.id[:12]) == 1
        [mount] = c.attrs["Mounts"]
        assert (mount["Type"], mount["Name"], mount["Destination"]) == ("volume", "ut_shared", "/data")
    host = running["ut_client_1"].attrs["HostConfig"]
    assert (host["ExtraHosts"], host["Dns"], host["DnsSearch"]) == (["gw:host-gateway"], ["10.9.9.9"], ["svc.example"])
    server = running["ut_server_1"]
    # the second network is joined by a connect that already names the short id: listed once
    assert set(server.attrs["NetworkSettings"]["Networks"]) == {"ut_back", "ut_front"}
    front_aliases = server.attrs["NetworkSettings"]["Networks"]["ut_front"]["Aliases"]
    assert "server" in front_aliases and front_aliases.count(server.id[:12]) == 1
    assert {c.id for c in back.containers} == {c.id for c in running.values()}
    assert [c.id for c in front.containers] == [server.id]


def test_ps_logs_and_exec(eng: EngineProcess) -> None:
    rows = compose(eng, "ps").stdout.splitlines()
    assert [r.split()[0] for r in rows[2:]] == ["ut_client_1", "ut_server_1"]
    assert all(" Up " in r for r in rows[2:])
    assert until(lambda: "client-up" in compose(eng, "logs", "client").stdout, timeout=20)
    host, _, port = compose(eng, "port", "client", "80").stdout.strip().rpartition(":")
    assert host == "0.0.0.0" and 32768 <= int(port) <= 60999
    done = compose(eng, "exec", "-T", "client", "sh", "-c", "echo in-client; exit 3", check=False)
    assert (done.returncode, done.stdout) == (3, "in-client\n")


def test_up_again_recreates_nothing(eng: EngineProcess, api: Any) -> None:
    before = ids(api)
    out = compose(eng, "up", "-d")
    assert "ut_server_1 is up-to-date" in out.stderr and "ut_client_1 is up-to-date" in out.stderr
    assert ids(api) == before


def test_stop_start_restart(eng: EngineProcess, api: Any) -> None:
    before = ids(api)
    compose(eng, "stop")
    assert {c.status for c in project(api).values()} == {"exited"}
    compose(eng, "start")
    assert {c.status for c in project(api).values()} == {"running"}
    started = {n: c.attrs["State"]["StartedAt"] for n, c in project(api).items()}
    compose(eng, "restart")
    after = project(api)
    assert {c.status for c in after.values()} == {"running"} and ids(api) == before
    assert all(after[n].attrs["State"]["StartedAt"] != started[n] for n in after)


def test_scale_up_and_down(eng: EngineProcess, api: Any) -> None:
    compose(eng, "up", "-d", "--scale", "client=3")
    assert set(project(api, all=False)) == {"ut_server_1", "ut_client_1", "ut_client_2", "ut_client_3"}
    third = project(api)["ut_client_3"]
    assert third.labels["com.docker.compose.container-number"] == "3"
    compose(eng, "up", "-d", "--scale", "client=1")
    assert set(project(api)) == {"ut_server_1", "ut_client_1"}


@pytest.mark.skipif(DOCKER is None, reason="docker-compose run starts the container with the docker CLI")
def test_run_rm(eng: EngineProcess, api: Any) -> None:
    done = compose(eng, "run", "--rm", "job")
    assert done.stdout.strip().splitlines()[-1] == "job-ran"
    done = compose(eng, "run", "--rm", "-T", "job", "sh", "-c", "echo asked; exit 5", check=False)
    assert (done.returncode, done.stdout.strip()) == (5, "asked")
    # a one-off of a service that runs is linked to its containers (HostConfig.Links)
    done = compose(eng, "run", "--rm", "-T", "server", "echo", "linked")
    assert done.stdout.strip() == "linked"
    assert not api.containers.list(all=True, filters={"label": "com.docker.compose.oneoff=True"})
    # `run` keeps stdin open (OpenStdin) unless the service says stdin_open: false
    done = compose(eng, "run", "--rm", "client", "true", check=False)
    assert done.returncode == 0, done.stderr


def test_force_recreate_carries_the_volume_over(eng: EngineProcess, api: Any) -> None:
    if "ContainerConfig" not in api.api.inspect_image("busybox"):
        pytest.skip("compose reads the image's ContainerConfig (GET /images/{name}/json, images area)")
    before = ids(api)
    compose(eng, "up", "-d", "--force-recreate")
    after = project(api, all=True)
    assert set(after) == {"ut_server_1", "ut_client_1"}  # the renamed old ones are gone
    assert not set(before.values()) & {c.id for c in after.values()}
    for c in after.values():
        assert c.status == "running"
        assert [m["Name"] for m in c.attrs["Mounts"]] == ["ut_shared"]


def test_down_v_leaves_nothing(eng: EngineProcess, api: Any) -> None:
    compose(eng, "run", "-d", "job")  # a one-off is removed by down too
    out = compose(eng, "down", "-v")
    assert "Removing network ut_back" in out.stderr and "Removing volume ut_shared" in out.stderr
    assert not api.containers.list(all=True)
    assert not [n.name for n in api.networks.list() if n.name.startswith("ut_")]
    assert not api.volumes.list()
