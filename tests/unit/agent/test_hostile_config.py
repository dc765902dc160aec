"""Container configuration as hostile input: every create field is honoured or refused by name.

The accepted bodies are the ones real clients send (recorded from the docker CLI 28 and
docker-py 7, and built with docker-py's HostConfig the way docker-compose 1.29 calls it); the
refused ones set one option this engine does not implement.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from labagent.api import createfields
from labagent.api.createbody import spec_from_body
from labagent.client import UnixConnection
from labagent.containers import ocispec, security
from labagent.containers.model import Container
from labagent.errors import BadParameter

BODIES = json.loads((Path(__file__).with_name("create_bodies.json")).read_text())["bodies"]
DOCKER_RUN = BODIES["docker run -d --name x -p 8080:80 --memory 64m busybox"]

# Docker Engine API v1.43 (moby docs/api/v1.43.yaml): ContainerConfig, and HostConfig with Resources.
V143_CONFIG = [
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
    "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
    "HostConfig", "NetworkingConfig"
]
V143_HOST = [
    "CpuShares", "Memory", "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota",
    "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules",
    "DeviceRequests", "KernelMemoryTCP", "MemoryReservation", "MemorySwap", "MemorySwappiness", "NanoCpus",
    "OomKillDisable", "Init", "PidsLimit", "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy", "AutoRemove",
    "VolumeDriver", "VolumesFrom", "Mounts", "ConsoleSize", "Annotations", "CapAdd", "CapDrop", "CgroupnsMode", "Dns",
    "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links", "OomScoreAdj", "PidMode",
    "Privileged", "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt", "StorageOpt", "Tmpfs", "UTSMode", "UsernsMode",
    "ShmSize", "Sysctls", "Runtime", "Isolation", "MaskedPaths", "ReadonlyPaths"
]


def with_host(**host: Any) -> dict[str, Any]:
    body = copy.deepcopy(DOCKER_RUN)
    body["HostConfig"].update(host)
    return body


def config_of(body: dict[str, Any]) -> dict[str, Any]:
    spec = spec_from_body(body)
    return ocispec.build_config(Container("c" * 64, "x", "now", spec), {"config": {"Cmd": ["sh"]}},
                                Path("/b"), Path("/b/rootfs"), None, "/labagent/c")


def test_every_v143_field_is_classified() -> None:
    for name in V143_CONFIG:
        assert name in createfields.HONOURED_CONFIG or name in createfields.AT_DEFAULT_CONFIG, name
    for name in V143_HOST:
        assert name in createfields.HONOURED_HOST or name in createfields.AT_DEFAULT_HOST, name


def test_the_docker_cli_run_body_is_accepted_as_recorded() -> None:
    spec = spec_from_body(DOCKER_RUN)
    assert spec.limits.memory == 64 << 20
    assert [(p.container_port, p.host_port, p.proto) for p in spec.ports] == [(80, 8080, "tcp")]
    assert (spec.user, spec.cap_drop, spec.readonly_rootfs, spec.oom_score_adj) == ("", [], False, 0)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_recorded_client_bodies_are_accepted(name: str) -> None:
    spec_from_body(BODIES[name])


def test_compose_style_host_config_from_docker_py_is_accepted() -> None:
    docker = pytest.importorskip("docker")
    log = docker.types.LogConfig(type="", config={})
    host = docker.types.HostConfig(
        version="1.43", links=[], port_bindings={80: 8080}, binds=[], volumes_from=[], privileged=False,
        network_mode="bridge", dns=None, dns_opt=None, dns_search=None, restart_policy=None, cap_add=None,
        cap_drop=None, mem_limit=None, ulimits=None, log_config=log, extra_hosts=None, read_only=None,
        pid_mode=None, security_opt=None, ipc_mode=None, cgroup_parent=None, cpu_quota=None,
        shm_size=None, sysctls=None, pids_limit=None, tmpfs=None, oom_kill_disable=None,
        oom_score_adj=None, mem_swappiness=None, group_add=None, userns_mode=None, init=None,
        isolation=None, cpu_count=None, cpu_percent=None, nano_cpus=None, volume_driver=None,
        cpuset_cpus=None, cpu_shares=None, storage_opt=None, device_cgroup_rules=None, mounts=[],
        device_requests=None)
    body = {"Image": "busybox", "Cmd": ["true"], "Hostname": None, "User": None, "Labels": {"a": "b"},
            "Env": [], "Volumes": None, "Healthcheck": None, "StopSignal": None, "NetworkDisabled": False,
            "HostConfig": dict(host)}
    assert spec_from_body(body).ports[0].host_port == 8080


def test_privilege_reducing_options_are_honoured() -> None:
    body = BODIES["docker run -d --user nobody:nogroup --cap-drop ALL --cap-add NET_BIND_SERVICE --read-only "
                  "--security-opt no-new-privileges -w /tmp busybox id"]
    spec = spec_from_body(body)
    assert spec.user == "nobody:nogroup" and spec.readonly_rootfs
    config = config_of(body)
    assert config["process"]["capabilities"]["bounding"] == ["CAP_NET_BIND_SERVICE"]
    assert config["process"]["capabilities"]["effective"] == ["CAP_NET_BIND_SERVICE"]
    assert config["root"]["readonly"] is True
    assert config["process"]["noNewPrivileges"] is True
    assert {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"} <= {m["destination"] for m in config["mounts"]}


def test_cap_drop_removes_exactly_the_named_caps() -> None:
    caps = config_of(with_host(CapDrop=["net_raw", "CAP_CHOWN"]))["process"]["capabilities"]
    assert "CAP_NET_RAW" not in caps["bounding"] and "CAP_CHOWN" not in caps["permitted"]
    assert set(caps["effective"]) == set(security.DEFAULT_CAPS) - {"CAP_NET_RAW", "CAP_CHOWN"}
    assert config_of(with_host(CapDrop=["ALL"]))["process"]["capabilities"]["bounding"] == []
    back = config_of(with_host(CapDrop=["CHOWN"], CapAdd=["CHOWN"]))["process"]["capabilities"]
    assert "CAP_CHOWN" in back["bounding"]  # Docker: CapAdd wins over CapDrop


def test_oom_score_adj_defaults_to_zero_and_may_only_rise() -> None:
    assert config_of(DOCKER_RUN)["process"]["oomScoreAdj"] == 0
    assert config_of(with_host(OomScoreAdj=500))["process"]["oomScoreAdj"] == 500
    with pytest.raises(BadParameter, match="OomScoreAdj=-500"):
        spec_from_body(with_host(OomScoreAdj=-500))
    with pytest.raises(BadParameter, match=r"range for oom score adj is \[-1000, 1000\]"):
        spec_from_body(with_host(OomScoreAdj=1001))


@pytest.mark.parametrize("opts", [["no-new-privileges"], ["no-new-privileges:true"], ["no-new-privileges=true"],
                                  ["no-new-privileges=1"], None, []])
def test_no_new_privileges_is_accepted(opts: list[str] | None) -> None:
    assert config_of(with_host(SecurityOpt=opts))["process"]["noNewPrivileges"] is True


@pytest.mark.parametrize("opt, message", [
    ("no-new-privileges:false", "always sets no_new_privs"),
    ("no-new-privileges=false", "always sets no_new_privs"),
    ("no-new-privileges=maybe", "invalid value"),
    ("seccomp=unconfined", "'seccomp=unconfined' is not supported"),
    ('seccomp={"defaultAction": "SCMP_ACT_ALLOW"}', "seccomp="),
    ("apparmor=unconfined", "'apparmor=unconfined'"),
    ("label=disable", "'label=disable'"),
    ("systempaths=unconfined", "'systempaths=unconfined'"),
])
def test_other_security_opts_are_refused_by_name(opt: str, message: str) -> None:
    with pytest.raises(BadParameter, match="HostConfig.SecurityOpt") as err:
        spec_from_body(with_host(SecurityOpt=["no-new-privileges", opt]))
    assert message in err.value.message


REFUSED_HOST = [
    ("CapAdd", ["SYS_ADMIN"]), ("CapAdd", ["ALL"]), ("CapAdd", ["NET_ADMIN"]),
    ("Sysctls", {"kernel.core_pattern": "|/tmp/x"}), ("Sysctls", {"vm.swappiness": "1"}),
    ("Sysctls", {"net.ipv4/../../x": "1"}), ("Sysctls", {"net.ipv4.ip_forward": "1\n2"}),
    ("Devices", [{"PathOnHost": "/dev/vda", "PathInContainer": "/dev/vda", "CgroupPermissions": "rwm"}]),
    ("DeviceCgroupRules", ["b 254:* rwm"]), ("DeviceRequests", [{"Driver": "nvidia", "Count": -1}]),
    ("IpcMode", "host"), ("IpcMode", "container:web"), ("UsernsMode", "private"), ("UTSMode", "container:web"),
    ("CgroupnsMode", "host"), ("Cgroup", "host"), ("Init", True),
    ("Ulimits", [{"Name": "nofile", "Soft": 20, "Hard": 10}]),
    ("Ulimits", [{"Name": "bogus", "Soft": 1, "Hard": 1}]), ("Ulimits", [{"Name": "nofile", "Soft": "x"}]),
    ("Dns", ["not-an-ip"]), ("Dns", ["1.1.1.1\n"]),
    ("DnsSearch", ["bad domain"]), ("DnsSearch", ["lab\nnameserver 6.6.6.6"]), ("DnsOptions", ["nd ots"]),
    ("ExtraHosts", ["a:1.2.3.4 b"]), ("ExtraHosts", "a:1.2.3.4"),
    ("GroupAdd", ["../x"]),
    ("GroupAdd", [-1]), ("GroupAdd", "wheel"),
    ("RestartPolicy", {"Name": "sometimes"}), ("RestartPolicy", {"Name": "always", "MaximumRetryCount": 3}),
    ("RestartPolicy", {"Name": "on-failure", "MaximumRetryCount": -1}), ("RestartPolicy", "always"),
    ("LogConfig", {"Type": "json-file", "Config": {"max-file": "0"}}),
    ("LogConfig", {"Type": "json-file", "Config": {"max-size": "1m"}}),
    ("ShmSize", -1), ("ShmSize", 1 << 50), ("CpusetCpus", "4095"), ("CpusetCpus", "0-"),
    ("CpusetCpus", "1-0"), ("CpusetMems", "63"),
    ("CgroupParent", "/"), ("BlkioWeight", 10), ("MemoryReservation", "lots"), ("MemorySwappiness", 101),
    ("KernelMemory", "lots"),
    ("MemorySwap", 1 << 20), ("MemorySwap", "lots"), ("OomKillDisable", True), ("PublishAllPorts", True),
    ("Links", ["db:bad alias"]),
    ("VolumeDriver", "local"), ("StorageOpt", {"size": "1G"}),
    ("Runtime", "runc"), ("Isolation", "hyperv"), ("MaskedPaths", []), ("ReadonlyPaths", []),
    ("Annotations", {"a": "b"}), ("CpuRealtimeRuntime", 1000), ("KernelMemoryTCP", 1 << 20),
    ("Privileged", True),
    ("NetworkMode", "host"), ("NetworkMode", "container:web"), ("PidMode", "container:web"),
    ("SomethingNewer", {"Enabled": True}),
]


@pytest.mark.parametrize("field, value", REFUSED_HOST)
def test_unsupported_host_options_are_refused_by_name(field: str, value: Any) -> None:
    with pytest.raises(BadParameter) as err:
        spec_from_body(with_host(**{field: value}))
    assert f"HostConfig.{field}" in err.value.message and "\n" not in err.value.message


REFUSED_CONFIG = [
    ("Domainname", "lab.example"), ("AttachStdin", "yes"), ("OpenStdin", 1), ("StdinOnce", "true"),
    ("Healthcheck", {"Test": ["SHELL", "true"]}), ("Healthcheck", {"Test": ["CMD"]}),
    ("Healthcheck", {"Test": ["CMD", "true"], "Interval": 5}), ("Healthcheck", {"Test": ["NONE"], "Retries": -1}),
    ("MacAddress", "02:42:ac:11:00:02"), ("StopSignal", "SIGNOPE"), ("StopTimeout", "5"), ("Shell", ["/bin/bash"]),
    ("OnBuild", ["RUN x"]), ("ArgsEscaped", True), ("SomethingNewer", "x"),
]


@pytest.mark.parametrize("field, value", REFUSED_CONFIG)
def test_unsupported_container_options_are_refused_by_name(field: str, value: Any) -> None:
    body = copy.deepcopy(DOCKER_RUN)
    body[field] = value
    with pytest.raises(BadParameter, match=field):
        spec_from_body(body)


@pytest.mark.parametrize("value", [None, "", 0, False, [], {}])
def test_an_unknown_field_left_empty_is_accepted(value: Any) -> None:
    spec_from_body(with_host(SomethingNewer=value))


@pytest.mark.parametrize("networking, field", [
    ({"EndpointsConfig": {"default": {"Aliases": ["web"]}}}, "Aliases"),
    ({"EndpointsConfig": {"default": {"IPAMConfig": {"IPv4Address": "172.31.0.9"}}}}, "IPAMConfig"),
    ({"EndpointsConfig": {"elsewhere": {"Links": ["a:b"]}}}, "Links"),  # a user network: no links
    ({"Other": 1}, "NetworkingConfig"),
])
def test_endpoint_settings_are_refused(networking: dict[str, Any], field: str) -> None:
    body = copy.deepcopy(DOCKER_RUN)
    body["NetworkingConfig"] = networking
    with pytest.raises(BadParameter, match=field):
        spec_from_body(body)


@pytest.mark.parametrize("user", ["a:b:c", "nobody\n", "no\x00body", "root x", "x" * 300, 0, ["root"]])
def test_a_malformed_user_is_refused_at_create(user: Any) -> None:
    body = copy.deepcopy(DOCKER_RUN)
    body["User"] = user
    with pytest.raises(BadParameter, match="User"):
        spec_from_body(body)


@pytest.mark.parametrize("field, value, message", [
    ("Hostname", "a\nb", "invalid hostname"), ("Hostname", "-x", "invalid hostname"),
    ("WorkingDir", "relative", "absolute path"), ("ExposedPorts", ["80/tcp"], "ExposedPorts"),
    ("NetworkDisabled", "yes", "NetworkDisabled"),
])
def test_malformed_container_fields_are_refused(field: str, value: Any, message: str) -> None:
    body = copy.deepcopy(DOCKER_RUN)
    body[field] = value
    with pytest.raises(BadParameter, match=message):
        spec_from_body(body)


@pytest.mark.parametrize("host, message", [
    ({"PortBindings": {"80/tcp": "8080"}}, "PortBindings"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "8080", "HostIp": 7}]}}, "HostIp"),
    ({"CapDrop": ["CAP_NOPE"]}, 'unknown capability: "CAP_NOPE"'),
    ({"CapDrop": "ALL"}, "CapDrop must be a list"),
    ({"ReadonlyRootfs": "yes"}, "ReadonlyRootfs must be true or false"),
])
def test_malformed_host_fields_are_refused(host: dict[str, Any], message: str) -> None:
    with pytest.raises(BadParameter, match=message):
        spec_from_body(with_host(**host))


def test_network_disabled_means_no_network() -> None:
    body = copy.deepcopy(DOCKER_RUN)
    body["NetworkDisabled"], body["HostConfig"]["PortBindings"] = True, {}
    assert spec_from_body(body).network_mode == "none"


def post_create(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = UnixConnection(client.path)
    conn.request("POST", "/v1.43/containers/create?name=x", body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_the_api_answers_400_naming_the_field_and_creates_nothing(client: Any, engine: Any) -> None:
    for host, field in (({"CapAdd": ["SYS_ADMIN"]}, "CapAdd"), ({"IpcMode": "host"}, "IpcMode"),
                        ({"Sysctls": {"kernel.x": "1"}}, "Sysctls")):
        status, data = post_create(client, with_host(**host))
        assert status == 400 and field in data["message"], data
    assert engine.containers.all() == []
    assert list((engine.root / "containers").iterdir()) == []
    status, data = post_create(client, DOCKER_RUN)
    assert status == 201, data
    info = client.json("GET", f"/containers/{data['Id']}/json")
    assert info["HostConfig"]["Memory"] == 64 << 20 and info["Config"]["User"] == ""
