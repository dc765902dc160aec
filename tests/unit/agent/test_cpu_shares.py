"""HostConfig.CpuShares: cpu.weight by one formula, in config.json's `unified` for the start and
written live by an update; shown in inspect as the shares given; refused out of range."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labagent.api.createbody import spec_from_body
from labagent.containers import ocispec
from labagent.errors import BadParameter
from labagent.runtime.cgroups import Cgroups, shares_to_weight

from .dockerhost import DOCKER, EngineProcess, docker_client, start_engine

docker = pytest.importorskip("docker")
BODIES = json.loads((Path(__file__).with_name("create_bodies.json")).read_text())["bodies"]
DOCKER_RUN = BODIES["docker run -d --name x -p 8080:80 --memory 64m busybox"]


@pytest.mark.parametrize("shares, weight", [(2, 1), (262144, 10000), (1024, 39), (512, 20), (3, 1),
                                            (100000, 3815), (1, 1), (1 << 40, 10000)])
def test_shares_to_weight_is_crun_s_linear_map(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def host(**fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(DOCKER_RUN)
    body["HostConfig"].update(fields)
    return body


def test_create_keeps_the_shares_for_crun_to_convert() -> None:
    spec = spec_from_body(host(CpuShares=512, NanoCpus=500_000_000))
    assert spec.limits.cpu_shares == 512
    res = ocispec.resources(spec.limits)
    assert res["cpu"] == {"quota": 50000, "period": 100000}  # no cpu.shares for crun to convert again
    assert res["unified"] == {"cpu.weight": "20"}
    assert "unified" not in ocispec.resources(spec_from_body(host(CpuShares=0)).limits)


@pytest.mark.parametrize("value", [1, 262145, -5, "512", 1.5, True, 1 << 64])
def test_create_refuses_shares_out_of_range_by_name(value: Any) -> None:
    with pytest.raises(BadParameter, match="CpuShares"):
        spec_from_body(host(CpuShares=value))


def test_set_limits_writes_the_weight_only_when_shares_are_given(tmp_path: Path) -> None:
    cgroups = Cgroups(tmp_path, "labagent")
    group = cgroups.container_dir("c1")
    group.mkdir(parents=True)
    cgroups.set_limits("c1", 0, (0, 0), 0)
    assert not (group / "cpu.weight").exists()
    cgroups.set_limits("c1", 0, (0, 0), 0, 2048)
    assert (group / "cpu.weight").read_text() == "79"


# the real server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("shares"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    yield from docker_client(eng)


def config_json(eng: EngineProcess, cid: str) -> dict[str, Any]:
    return json.loads((eng.base / "root" / "containers" / cid / "config.json").read_text())


def weight_file(eng: EngineProcess, cid: str) -> Path:
    return eng.base / "seams" / "cgroup" / "labagent" / cid / "ctr" / "cpu.weight"


def test_docker_py_cpu_shares_reach_config_json_and_inspect(sdk, eng: EngineProcess) -> None:
    ctr = sdk.api.create_container("busybox", ["sleep", "60"],
                                   host_config=sdk.api.create_host_config(cpu_shares=512))
    sdk.api.start(ctr)
    assert sdk.api.inspect_container(ctr)["HostConfig"]["CpuShares"] == 512
    assert config_json(eng, ctr["Id"])["linux"]["resources"]["unified"] == {"cpu.weight": "20"}
    plain = sdk.containers.run("busybox", ["sleep", "60"], detach=True)
    assert plain.attrs["HostConfig"]["CpuShares"] == 0


def test_update_writes_cpu_weight_live_and_records_the_shares(sdk, eng: EngineProcess) -> None:
    ctr = sdk.containers.run("busybox", ["sleep", "60"], detach=True, cpu_shares=512, mem_limit=64 << 20)
    ctr.update(cpu_shares=1024)
    assert weight_file(eng, ctr.id).read_text() == "39"
    assert sdk.api.inspect_container(ctr.id)["HostConfig"]["CpuShares"] == 1024
    assert config_json(eng, ctr.id)["linux"]["resources"]["unified"] == {"cpu.weight": "39"}  # next start
    ctr.update(mem_limit=128 << 20)  # CpuShares 0 in the body: the shares stay
    host = sdk.api.inspect_container(ctr.id)["HostConfig"]
    assert (host["CpuShares"], host["Memory"]) == (1024, 128 << 20)


def test_the_smallest_shares_as_docker_py_s_model_test_uses_them(sdk, eng: EngineProcess) -> None:
    ctr = sdk.containers.run("busybox", ["sleep", "60"], detach=True, cpu_shares=2)
    assert ctr.attrs["HostConfig"]["CpuShares"] == 2
    ctr.update(cpu_shares=3)
    ctr.reload()
    assert ctr.attrs["HostConfig"]["CpuShares"] == 3 and weight_file(eng, ctr.id).read_text() == "1"


@pytest.mark.parametrize("value", [1, 262145, -1, "9"])
def test_update_refuses_shares_out_of_range_and_applies_nothing(sdk, eng: EngineProcess, value: Any) -> None:
    ctr = sdk.containers.run("busybox", ["sleep", "60"], detach=True, cpu_shares=512)
    answer = sdk.api._post_json(sdk.api._url("/containers/{0}/update", ctr.id), data={"CpuShares": value})
    assert answer.status_code == 400 and "CpuShares" in answer.json()["message"], answer.text
    assert sdk.api.inspect_container(ctr.id)["HostConfig"]["CpuShares"] == 512
    assert not weight_file(eng, ctr.id).exists()


def test_update_of_a_stopped_container_applies_at_its_next_start(sdk, eng: EngineProcess) -> None:
    ctr = sdk.containers.create("busybox", ["sleep", "60"])
    ctr.update(cpu_shares=256)
    assert not weight_file(eng, ctr.id).exists()
    ctr.start()
    assert config_json(eng, ctr.id)["linux"]["resources"]["unified"] == {"cpu.weight": "10"}


@pytest.mark.skipif(DOCKER is None, reason="docker CLI missing")
def test_docker_cli_run_and_update_with_cpu_shares(eng: EngineProcess, sdk) -> None:
    out = eng.docker("run", "-d", "--cpu-shares", "256", "busybox", "sleep", "60")
    assert out.returncode == 0, out.stderr
    cid = out.stdout.strip()
    assert sdk.api.inspect_container(cid)["HostConfig"]["CpuShares"] == 256
    out = eng.docker("update", "--cpu-shares", "2048", cid)
    assert out.returncode == 0, out.stderr
    assert weight_file(eng, cid).read_text() == "79"
    out = eng.docker("update", "--cpu-shares", "1", cid)
    assert out.returncode != 0 and "CpuShares" in out.stderr
