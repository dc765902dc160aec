"""docker-py (the docker SDK) against the engine served with fake seams."""

from __future__ import annotations

import pytest

from .conftest import docker_save, tar_bytes
from .dockerhost import EngineProcess, docker_client, start_engine

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("dockerpy"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    yield from docker_client(eng)


def test_version_ping_and_images(sdk) -> None:
    assert sdk.ping() is True
    assert sdk.version()["ApiVersion"] == "1.43"
    assert "busybox:latest" in [t for i in sdk.images.list() for t in i.tags]


def test_run_foreground_returns_output_and_raises_on_failure(sdk) -> None:
    assert sdk.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as err:
        sdk.containers.run("busybox", ["sh", "-c", "echo boom >&2; exit 2"])
    assert err.value.exit_status == 2 and b"boom" in err.value.stderr


def test_detached_container_exec_logs_kill_wait(sdk) -> None:
    ctr = sdk.containers.run("busybox", ["sh", "-c", "echo started; sleep 30"], detach=True, name="py",
                             environment={"A": "1"}, ports={"80/tcp": 18081}, mem_limit="64m",
                             nano_cpus=500_000_000, pids_limit=20)
    ctr.reload()
    assert ctr.status == "running" and ctr.attrs["HostConfig"]["Memory"] == 64 << 20
    assert sdk.containers.get("py").id == ctr.id == sdk.containers.get(ctr.id[:10]).id
    result = ctr.exec_run(["sh", "-c", "echo $A-x; exit 5"], environment={"A": "1"})
    assert (result.exit_code, result.output) == (5, b"1-x\n")
    ctr.kill()
    assert ctr.wait(timeout=10)["StatusCode"] == 137
    assert ctr.logs() == b"started\n"


def test_load_inspect_remove_and_errors(sdk) -> None:
    loaded = sdk.images.load(docker_save([tar_bytes({"f": b"x"})], ["sdk:1"]))
    assert loaded[0].tags == ["sdk:1"]
    sdk.images.remove("sdk:1")
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get("sdk:1")
    with pytest.raises(docker.errors.NotFound, match="No such container"):
        sdk.containers.get("nosuch")
    with pytest.raises(docker.errors.APIError, match="docker load"):
        sdk.images.pull("alpine")
