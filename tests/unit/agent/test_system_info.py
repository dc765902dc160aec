"""GET /info and GET /system/df: the node's figures read through nodefacts (pointed at files of
the test's own), then the real server as docker-py and the docker CLI see it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from labagent import fsutil, nodefacts
from labagent.api import diskusage, system, views
from labagent.containers.model import Container, ContainerState, CreateSpec
from labagent.nodefacts import CgroupSupport, read_facts

from .conftest import docker_save, tar_bytes
from .dockerhost import DOCKER, EngineProcess, docker_client, start_engine

docker = pytest.importorskip("docker")
UNAME = os.uname_result(("Linux", "node7", "6.1.0-99-amd64", "#1 SMP", "aarch64"))


def tree(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)
    return base


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    proc = tree(tmp_path / "proc", {
        "meminfo": "MemTotal:        2048 kB\nMemFree:          512 kB\n",
        "self/status": "Name:\tpython3\nCpus_allowed:\t2f\nCpus_allowed_list:\t0-3,5\n",
        "sys/net/ipv4/ip_forward": "1\n",
        "sys/net/bridge/bridge-nf-call-iptables": "0\n",
        "self/mountinfo": "22 1 8:1 / / rw,relatime - ext4 /dev/vda1 rw\n"
                          "40 22 8:2 / /var/lib/my\\040lab rw - xfs /dev/vdb rw\n"
                          "41 40 0:5 / /var/lib/my\\040lab/root/run rw - tmpfs tmpfs rw\n",
    })
    (proc / "self" / "fd").mkdir()
    for n in range(3):
        (proc / "self" / "fd" / str(n)).write_text("")
    release = tree(tmp_path, {"os-release": 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                                            "VERSION_ID='12'\n"}) / "os-release"
    group = tree(tmp_path / "cgroup", {"cgroup.controllers": "cpuset cpu io memory pids\n",
                                       "memory.swap.max": "max\n"})
    return {"proc": proc, "release": release, "group": group, "root": Path("/var/lib/my lab/root")}


def test_facts_come_from_the_files_and_uname_given(node: dict[str, Path]) -> None:
    facts = read_facts(node["root"], node["group"], node["proc"], node["release"], UNAME)
    assert (facts.hostname, facts.kernel, facts.machine) == ("node7", "6.1.0-99-amd64", "aarch64")
    assert (facts.os_name, facts.os_version) == ("Debian GNU/Linux 12 (bookworm)", "12")
    assert (facts.ncpu, facts.mem_total, facts.open_fds) == (5, 2048 * 1024, 3)
    assert (facts.ipv4_forwarding, facts.bridge_nf_iptables, facts.bridge_nf_ip6tables) == (True, False, False)
    assert facts.backing_fs == "xfs"  # the deepest mount above the root, its escaped space decoded
    assert facts.cgroups == CgroupSupport(memory=True, cpu=True, pids=True, swap=True)


def test_missing_files_give_the_values_of_a_node_without_the_feature(tmp_path: Path) -> None:
    facts = read_facts(tmp_path / "root", tmp_path / "cgroup", tmp_path / "noproc", tmp_path / "none", UNAME)
    assert (facts.os_name, facts.os_version, facts.mem_total, facts.ipv4_forwarding) == ("Linux", "", 0, False)
    assert facts.ncpu == (os.cpu_count() or 1) and facts.backing_fs == "unknown"
    assert facts.cgroups == CgroupSupport()


def test_swap_needs_memory_swap_max_and_controllers_are_read_by_word(tmp_path: Path) -> None:
    group = tree(tmp_path, {"cgroup.controllers": "cpuset memory\n"})
    assert nodefacts.cgroup_support(group) == CgroupSupport(memory=True)
    (group / "cgroup.controllers").write_text("cpuset io hugetlb\n")  # "cpu" is not "cpuset"
    (group / "memory.swap.max").write_text("max\n")
    assert nodefacts.cgroup_support(group) == CgroupSupport()


@pytest.mark.parametrize("text, count", [("0-3,6", 5), ("7", 1), ("0-a", 0), ("3-1", 0), ("", 0), ("1,,2", 0)])
def test_cpu_lists(text: str, count: int) -> None:
    assert nodefacts.cpu_list_count(text) == count


def test_meminfo_reads_the_memtotal_line_not_the_first() -> None:
    assert nodefacts.mem_total("MemFree: 5 kB\nMemTotal: 7 kB\n") == 7 * 1024
    assert nodefacts.mem_total("MemTotal: lots kB\n") == 0


def container(status: str, paused: bool = False) -> Container:
    return Container("c" * 64, "x", "2024-01-01T00:00:00Z", CreateSpec(image="busybox", image_id=""),
                     ContainerState(status=status, paused=paused))


def test_info_counts_states_and_warns_of_what_the_node_lacks(node: dict[str, Path]) -> None:
    facts = read_facts(node["root"], node["group"], node["proc"], node["release"], UNAME)
    fleet = [container("running"), container("running", paused=True), container("exited"), container("created")]
    body = views.info(fleet, 3, "/r", facts, "id-1", "/usr/bin/crun", "abc", 2)
    assert (body["Containers"], body["ContainersRunning"], body["ContainersPaused"], body["ContainersStopped"],
            body["Images"]) == (4, 1, 1, 2, 3)
    assert (body["NCPU"], body["MemTotal"], body["Architecture"], body["Name"], body["ID"]) == (
        5, 2048 * 1024, "aarch64", "node7", "id-1")
    assert (body["MemoryLimit"], body["SwapLimit"], body["CPUShares"], body["PidsLimit"]) == (True,) * 4
    assert body["Warnings"] == [] and body["NEventsListener"] == 2
    assert body["Runtimes"] == {"crun": {"path": "/usr/bin/crun"}}
    assert body["DriverStatus"] == [["Backing Filesystem", "xfs"]]
    bare = read_facts(node["root"], node["root"], node["proc"], node["release"], UNAME)
    warned = views.info([], 0, "/r", bare, "id-1", "crun", "", 0)
    assert (warned["MemoryLimit"], warned["SwapLimit"], warned["CpuCfsQuota"]) == (False, False, False)
    assert "WARNING: No swap limit support" in warned["Warnings"]


def test_the_runtime_commit_is_read_from_its_version_once(tmp_path: Path) -> None:
    script = tmp_path / "crun"
    script.write_text(f"#!/bin/sh\necho called >> {tmp_path}/calls\necho 'crun version 9'\necho 'commit: abc123'\n")
    script.chmod(0o755)
    assert nodefacts.runtime_commit(str(script)) == "abc123" == nodefacts.runtime_commit(str(script))
    assert (tmp_path / "calls").read_text() == "called\n"
    assert nodefacts.runtime_commit(str(tmp_path / "missing")) == ""


def test_the_engine_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = system.engine_id(tmp_path)
    assert uuid.UUID(first) and system.engine_id(tmp_path) == first
    other = tmp_path / "other"
    other.mkdir()
    assert system.engine_id(other) != first
    (other / system.ENGINE_ID).write_text("not an id\n")
    replaced = system.engine_id(other)
    assert uuid.UUID(replaced) and system.engine_id(other) == replaced
    assert sorted(p.name for p in other.iterdir()) == [system.ENGINE_ID]  # no temporary file left


# the real server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("sysinfo"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    yield from docker_client(eng, volumes=True)


def host_meminfo() -> int:
    return nodefacts.mem_total(Path("/proc/meminfo").read_text())


def test_docker_py_info_holds_the_nodes_true_figures(sdk, eng: EngineProcess) -> None:
    group = eng.base / "seams" / "cgroup" / "labagent"
    (group / "cgroup.controllers").write_text("cpu memory pids\n")
    try:
        sdk.containers.run("busybox", ["sleep", "60"], detach=True)
        sdk.containers.create("busybox", ["true"])
        info = sdk.info()
    finally:
        (group / "cgroup.controllers").unlink()
    uname = os.uname()
    assert (info["Containers"], info["ContainersRunning"], info["ContainersStopped"]) == (2, 1, 1)
    assert info["Images"] == len(sdk.images.list(all=True))
    assert (info["NCPU"], info["MemTotal"]) == (len(os.sched_getaffinity(0)), host_meminfo())
    assert (info["KernelVersion"], info["Architecture"], info["Name"]) == (uname.release, uname.machine,
                                                                          uname.nodename)
    assert info["OperatingSystem"] == nodefacts.os_release(Path("/etc/os-release").read_text())[0]
    assert info["DockerRootDir"] == os.path.realpath(eng.base / "root")
    assert uuid.UUID(info["ID"]) and sdk.info()["ID"] == info["ID"]
    assert (info["MemoryLimit"], info["CpuCfsQuota"], info["PidsLimit"], info["SwapLimit"]) == (True, True, True,
                                                                                                 False)
    assert info["Warnings"] == ["WARNING: No swap limit support"] + (
        [] if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1" else
        ["WARNING: IPv4 forwarding is disabled"])
    assert (info["Driver"], info["CgroupDriver"], info["CgroupVersion"], info["OSType"]) == (
        "overlay2", "cgroupfs", "2", "linux")
    assert info["Plugins"]["Volume"] == ["local"] and info["Plugins"]["Log"] == ["json-file"]
    assert info["Runtimes"]["crun"]["path"] == str(eng.base / "seams" / "crun")
    assert info["RuncCommit"]["ID"] == "f00dfeed" * 5  # from `crun --version`
    assert info["Swarm"]["LocalNodeState"] == "inactive" and info["ExperimentalBuild"] is False
    assert "name=seccomp,profile=builtin" in info["SecurityOptions"]
    assert sdk.info()["MemoryLimit"] is False  # read at each request: the controllers file is gone


def layer_bytes(name: str, size: int) -> bytes:
    return tar_bytes({name: b"x" * size})


def test_docker_py_df_measures_layers_containers_and_volumes(sdk, eng: EngineProcess) -> None:
    base = layer_bytes("base.bin", 1000)
    sdk.images.load(docker_save([base], ["dfbase:1"]))
    sdk.images.load(docker_save([base, layer_bytes("top.bin", 3000)], ["dftop:1"]))
    vol = sdk.volumes.create("dfvol")
    (Path(vol.attrs["Mountpoint"]) / "data").write_bytes(b"v" * 4096)
    sdk.volumes.create("dfidle")
    ctr = sdk.containers.run("dftop:1", ["sleep", "60"], detach=True, volumes={"dfvol": {"bind": "/v"}})
    upper = eng.base / "root" / "containers" / ctr.id / "upper"
    upper.mkdir(parents=True, exist_ok=True)
    (upper / "written").write_bytes(b"w" * 700)
    df = sdk.df()
    images = {i["RepoTags"][0]: i for i in df["Images"]}
    assert (images["dfbase:1"]["Size"], images["dfbase:1"]["SharedSize"]) == (1000, 1000)
    assert (images["dftop:1"]["Size"], images["dftop:1"]["SharedSize"]) == (4000, 1000)
    assert (images["dftop:1"]["Containers"], images["dfbase:1"]["Containers"]) == (1, 0)
    busybox = images["busybox:latest"]["Size"]
    assert df["LayersSize"] == 1000 + 3000 + busybox  # the shared layer counted once
    [listed] = [c for c in df["Containers"] if c["Id"] == ctr.id]
    assert (listed["SizeRw"], listed["SizeRootFs"]) == (700, 4700)
    volumes = {v["Name"]: v for v in df["Volumes"]}
    assert volumes["dfvol"]["UsageData"] == {"Size": 4096, "RefCount": 1}
    assert volumes["dfidle"]["UsageData"] == {"Size": 0, "RefCount": 0}
    assert volumes["dfvol"]["Mountpoint"] == vol.attrs["Mountpoint"]
    assert df["BuildCache"] == []


def test_df_follows_no_link_out_of_a_volume_and_walks_a_bounded_tree(sdk, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "big"
    outside.write_bytes(b"o" * (1 << 20))
    vol = sdk.volumes.create("linky")
    data = Path(vol.attrs["Mountpoint"])
    (data / "link").symlink_to(outside)
    (data / "dirlink").symlink_to(tmp_path)
    (data / "own").write_bytes(b"i" * 10)
    [seen] = [v for v in sdk.df()["Volumes"] if v["Name"] == "linky"]
    assert seen["UsageData"]["Size"] == 10
    many = tmp_path / "many"
    many.mkdir()
    for n in range(50):
        (many / f"f{n}").write_bytes(b"z" * 100)
    assert diskusage.LayerSizes().size(many) == 5000
    monkeypatch.setattr(fsutil, "MAX_WALK", 10)
    assert diskusage.LayerSizes().size(many) == 1000  # counting stops at the bound
    assert diskusage.LayerSizes().size(tmp_path / "absent") == 0


def test_df_types_and_a_bad_type(sdk) -> None:
    sdk.volumes.create("onlyme")
    answer = sdk.api._result(sdk.api._get(sdk.api._url("/system/df"), params={"type": ["volume"]}), True)
    assert [v["Name"] for v in answer["Volumes"]] == ["onlyme"]
    assert (answer["Images"], answer["Containers"], answer["BuildCache"], answer["LayersSize"]) == (None,) * 3 + (0,)
    bad = sdk.api._get(sdk.api._url("/system/df"), params={"type": ["volume", "secrets"]})
    assert bad.status_code == 400 and "unknown object type: secrets" in bad.json()["message"]


def test_df_lists_the_build_cache_and_what_images_share_of_it(sdk, tmp_path: Path) -> None:
    sdk.images.load(docker_save([layer_bytes("base.bin", 1000)], ["cachebase:1"]))
    (tmp_path / "Dockerfile").write_text("FROM cachebase:1\nCOPY f /f\n")
    (tmp_path / "f").write_bytes(b"f" * 2500)
    image, _ = sdk.images.build(path=str(tmp_path), tag="cached:1")
    cache = sdk.df()["BuildCache"]
    [record] = [r for r in cache if r["Size"] == 2500]
    assert record["Shared"] is True and record["InUse"] is False and record["Type"] == "regular"
    image.reload()
    assert any(i["Size"] == 3500 for i in sdk.df()["Images"] if "cached:1" in i["RepoTags"])


@pytest.mark.skipif(DOCKER is None, reason="docker CLI missing")
def test_docker_cli_info_and_system_df(eng: EngineProcess, sdk) -> None:
    sdk.volumes.create("clivol")
    out = eng.docker("info")
    assert out.returncode == 0, out.stderr
    for line in ("Storage Driver: overlay2", "Cgroup Driver: cgroupfs", "Cgroup Version: 2",
                 f"Kernel Version: {os.uname().release}", f"Name: {os.uname().nodename}",
                 f"CPUs: {len(os.sched_getaffinity(0))}", "Default Runtime: crun"):
        assert line in out.stdout, (line, out.stdout)
    fields = json.loads(eng.docker("info", "--format", "{{json .}}").stdout)
    assert "ServerErrors" not in fields
    assert fields["MemTotal"] == host_meminfo()
    out = eng.docker("system", "df")
    assert out.returncode == 0, out.stderr
    kinds = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert kinds == ["Images", "Containers", "Local", "Build"]
    out = eng.docker("system", "df", "-v")
    assert out.returncode == 0 and "clivol" in out.stdout, out.stderr
