"""Create options docker-py's integration suite sends: each reaches config.json as crun needs it and
shows in inspect, or is refused with a 400 in the words docker-py checks."""

from __future__ import annotations

import json
import resource
from collections.abc import Iterator
from typing import Any

import pytest

from .dockerhost import EngineProcess, docker_client, start_engine

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("options"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    yield from docker_client(eng)


def config_json(eng: EngineProcess, cid: str) -> dict[str, Any]:
    return json.loads((eng.base / "root" / "containers" / cid / "config.json").read_text())


def started(sdk, **host: Any) -> tuple[str, dict[str, Any]]:
    ctr = sdk.api.create_container("busybox", ["sleep", "30"], host_config=sdk.api.create_host_config(**host))
    sdk.api.start(ctr)
    return ctr["Id"], sdk.api.inspect_container(ctr)


def refused(sdk, **host: Any) -> str:
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.create_container("busybox", ["true"], host_config=sdk.api.create_host_config(**host))
    assert err.value.status_code == 400
    return str(err.value.explanation)


def test_log_config_json_file_with_max_file_is_shown_as_given(sdk) -> None:
    _, info = started(sdk, log_config=docker.types.LogConfig(type="json-file", config={"max-file": "100"}))
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "100"}}
    _, info = started(sdk, log_config=docker.types.LogConfig(type="", config={"max-file": "3"}))
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3"}}
    _, info = started(sdk, log_config=docker.types.LogConfig(type="json-file", config=None))
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}


def test_log_drivers_and_opts_not_implemented_are_refused(sdk) -> None:
    bad = docker.types.LogConfig(type="asdf-nope", config={})
    assert refused(sdk, log_config=bad) == "logger: no log driver named 'asdf-nope' is registered"
    rotate = docker.types.LogConfig(type="json-file", config={"max-size": "1m"})
    assert "HostConfig.LogConfig" in refused(sdk, log_config=rotate)


def test_memory_swap_and_reservation_reach_the_cgroup(sdk, eng: EngineProcess) -> None:
    cid, info = started(sdk, mem_limit="700M", memswap_limit="1G", mem_reservation="100M")
    memory = config_json(eng, cid)["linux"]["resources"]["memory"]
    assert memory == {"limit": 700 << 20, "swap": 1 << 30, "reservation": 100 << 20}
    assert (info["HostConfig"]["MemorySwap"], info["HostConfig"]["MemoryReservation"]) == (1 << 30, 100 << 20)
    cid, _ = started(sdk, mem_limit="64M", memswap_limit=-1)
    assert config_json(eng, cid)["linux"]["resources"]["memory"]["swap"] == -1
    assert "HostConfig.MemorySwap" in refused(sdk, mem_limit="64M", memswap_limit="32M")
    assert "HostConfig.MemorySwap" in refused(sdk, memswap_limit="1G")


def test_swappiness_and_kernel_memory_are_discarded_with_dockerds_warnings(sdk) -> None:
    ctr = sdk.api.create_container("busybox", ["true"],
                                   host_config=sdk.api.create_host_config(mem_swappiness=40, kernel_memory="64m"))
    assert any("swappiness" in w for w in ctr["Warnings"]) and any("kernel memory" in w for w in ctr["Warnings"])
    assert "MemorySwappiness" in sdk.api.inspect_container(ctr)["HostConfig"]
    plain = sdk.api.create_container("busybox", ["true"],
                                     host_config=sdk.api.create_host_config(mem_swappiness=-1))
    assert plain["Warnings"] == []
    assert "HostConfig.MemorySwappiness" in refused(sdk, mem_swappiness=101)


def test_cpusets_are_checked_against_the_node(sdk, eng: EngineProcess) -> None:
    cid, info = started(sdk, cpuset_cpus="0", cpuset_mems="0")
    assert config_json(eng, cid)["linux"]["resources"]["cpu"] == {"cpus": "0", "mems": "0"}
    assert (info["HostConfig"]["CpusetCpus"], info["HostConfig"]["CpusetMems"]) == ("0", "0")
    assert "HostConfig.CpusetCpus" in refused(sdk, cpuset_cpus="4000")
    assert "HostConfig.CpusetCpus" in refused(sdk, cpuset_cpus="0;1")


def test_uts_host_shares_the_nodes_uts_namespace(sdk, eng: EngineProcess) -> None:
    cid, info = started(sdk, uts_mode="host")
    config = config_json(eng, cid)
    assert "uts" not in {ns["type"] for ns in config["linux"]["namespaces"]} and "hostname" not in config
    assert info["HostConfig"]["UTSMode"] == "host"
    cid, _ = started(sdk)
    assert "uts" in {ns["type"] for ns in config_json(eng, cid)["linux"]["namespaces"]}


def test_ulimits_shm_size_and_sysctls_reach_config_json(sdk, eng: EngineProcess) -> None:
    cid, info = started(sdk, ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=2048),
                                      docker.types.Ulimit(name="core", soft=-1, hard=-1)],
                        shm_size="128m", sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmax": "4096"})
    config = config_json(eng, cid)
    rl = {r["type"]: (r["soft"], r["hard"]) for r in config["process"]["rlimits"]}
    assert rl == {"RLIMIT_NOFILE": (1024, 2048), "RLIMIT_CORE": (resource.RLIM_INFINITY,) * 2}
    shm = next(m for m in config["mounts"] if m["destination"] == "/dev/shm")
    assert "size=131072k" in shm["options"]
    assert config["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "4096"}
    assert info["HostConfig"]["ShmSize"] == 128 << 20
    assert info["HostConfig"]["Ulimits"][0] == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert "HostConfig.Sysctls" in refused(sdk, sysctls={"kernel.core_pattern": "|/tmp/x"})
    assert "HostConfig.Ulimits" in refused(sdk, ulimits=[docker.types.Ulimit(name="nofile", soft=9, hard=1)])


def test_runtime_isolation_and_init(sdk) -> None:
    _, info = started(sdk, isolation="default", runtime="crun")
    assert (info["HostConfig"]["Isolation"], info["HostConfig"]["Runtime"]) == ("default", "crun")
    assert "HostConfig.Runtime" in refused(sdk, runtime="runc")
    assert "HostConfig.Isolation" in refused(sdk, isolation="hyperv")
    message = refused(sdk, init=True)
    assert "HostConfig.Init" in message and "init binary" in message


def test_env_entries_without_a_value_are_kept_as_given(sdk, eng: EngineProcess) -> None:
    ctr = sdk.api.create_container("busybox", ["sleep", "30"],
                                   environment={"Foo": None, "Other": "one", "Blank": ""})
    assert sorted(sdk.api.inspect_container(ctr)["Config"]["Env"]) == ["Blank=", "Foo", "Other=one"]
    sdk.api.start(ctr)
    env = config_json(eng, ctr["Id"])["process"]["env"]
    assert "Other=one" in env and "Blank=" in env and not any(e.split("=")[0] == "Foo" for e in env)


def test_removing_a_running_container_in_dockerds_words(sdk) -> None:
    ctr = sdk.containers.run("busybox", ["sleep", "30"], detach=True)
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.remove_container(ctr.id)
    assert err.value.status_code == 409 and "You cannot remove a running container" in err.value.explanation


def test_swarm_is_inactive(sdk) -> None:
    for call in (sdk.api.inspect_swarm, sdk.api.leave_swarm):
        with pytest.raises(docker.errors.APIError) as err:
            call()
        assert err.value.status_code == 503 and "not part of a swarm" in err.value.explanation


def test_logs_since_and_until(sdk) -> None:
    ctr = sdk.containers.run("busybox", ["echo", "teahouse"], detach=True)
    ctr.wait(timeout=10)
    assert sdk.api.logs(ctr.id, until=1) == b""
    assert sdk.api.logs(ctr.id, until=4102444800) == b"teahouse\n"
    assert sdk.api.logs(ctr.id, since=4102444800) == b""
    assert sdk.api.logs(ctr.id, since=1) == b"teahouse\n"


def test_list_shows_the_image_as_given(sdk) -> None:
    ctr = sdk.api.create_container("busybox:latest", "true")
    sdk.api.start(ctr)
    listed = [c for c in sdk.api.containers(all=True) if c["Id"] == ctr["Id"]]
    assert listed[0]["Image"] == "busybox:latest" and listed[0]["Command"] == "true"


def test_group_add_reaches_the_process_supplementary_groups(sdk, eng: EngineProcess) -> None:
    cid, info = started(sdk, group_add=[1000, "1001"])
    assert config_json(eng, cid)["process"]["user"]["additionalGids"] == [0, 1000, 1001]
    assert info["HostConfig"]["GroupAdd"] == ["1000", "1001"]
    ctr = sdk.api.create_container("busybox", ["true"],
                                   host_config=sdk.api.create_host_config(group_add=["nosuchgroup"]))
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.start(ctr)
    assert "Unable to find group nosuchgroup" in err.value.explanation
    assert "HostConfig.GroupAdd" in refused(sdk, group_add=["../etc"])


def test_dns_and_extra_hosts_reach_the_containers_files(sdk, eng: EngineProcess) -> None:
    cid, info = started(sdk, dns=["192.0.2.53"], dns_search=["lab.test"], dns_opt=["ndots:2"],
                        extra_hosts={"db.test": "192.0.2.7"})
    bundle = eng.base / "root" / "containers" / cid
    resolv = (bundle / "resolv.conf").read_text().splitlines()
    assert [line for line in resolv if line.startswith("nameserver")] == ["nameserver 192.0.2.53"]
    assert "search lab.test" in resolv and "options ndots:2" in resolv
    assert "192.0.2.7\tdb.test" in (bundle / "hosts").read_text().splitlines()
    hc = info["HostConfig"]
    assert (hc["Dns"], hc["DnsSearch"], hc["DnsOptions"], hc["ExtraHosts"]) == (
        ["192.0.2.53"], ["lab.test"], ["ndots:2"], ["db.test:192.0.2.7"])
    sdk.containers.run("busybox", ["sleep", "30"], detach=True)  # another start rewrites every hosts file
    assert "192.0.2.7\tdb.test" in (bundle / "hosts").read_text().splitlines()
    assert "HostConfig.ExtraHosts" in refused(sdk, extra_hosts=["evil:1.2.3.4\n6.6.6.6 bank"])
    assert "HostConfig.Dns" in refused(sdk, dns=["1.1.1.1\nnameserver 6.6.6.6"])
    assert "HostConfig.DnsOptions" in refused(sdk, dns_opt=["ndots:1 rotate\nsearch x"])
