from pathlib import Path

from labagent.containers import ocispec, security
from labagent.containers.model import Container, CreateSpec, Limits

IMAGE = {"config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "FROM_IMAGE=1"], "WorkingDir": "/srv"}}


def build(**spec_fields):
    spec = CreateSpec("busybox", "sha256:x", **spec_fields)
    c = Container("c" * 64, "web", "now", spec)
    return ocispec.build_config(c, IMAGE, Path("/b"), Path("/b/rootfs"), "/run/netns/lab-cccc",
                                "/labagent/c/ctr")


def test_all_six_namespaces_with_the_named_netns():
    ns = build()["linux"]["namespaces"]
    assert sorted(n["type"] for n in ns) == ["cgroup", "ipc", "mount", "network", "pid", "uts"]
    assert {"type": "network", "path": "/run/netns/lab-cccc"} in ns
    assert all("path" not in n for n in ns if n["type"] != "network")


def test_limits_land_in_linux_resources():
    res = build(limits=Limits(memory=64 << 20, nano_cpus=500_000_000, pids=20))["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 64 << 20}  # no swap: OOM, not paging
    assert res["cpu"] == {"quota": 50_000, "period": 100_000}
    assert res["pids"] == {"limit": 20}
    assert res["devices"][0] == {"allow": False, "access": "rwm"}


def test_explicit_quota_and_no_limits():
    res = build(limits=Limits(cpu_quota=20_000, cpu_period=50_000))["linux"]["resources"]
    assert res["cpu"] == {"quota": 20_000, "period": 50_000}
    assert "memory" not in res and "pids" not in res
    assert "cpu" not in build()["linux"]["resources"]


def test_confinement_matches_docker_defaults():
    config = build()
    caps = config["process"]["capabilities"]
    assert set(caps["bounding"]) == set(security.DEFAULT_CAPS)
    assert "CAP_SYS_ADMIN" not in caps["effective"] and "CAP_NET_BIND_SERVICE" in caps["permitted"]
    assert config["process"]["noNewPrivileges"] is True
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    assert "/proc/sys" in config["linux"]["readonlyPaths"]
    seccomp = config["linux"]["seccomp"]
    assert (seccomp["defaultAction"], seccomp["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)  # an allow-list
    allowed = {name for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
               for name in rule["names"]}
    assert not {"mount", "umount2", "init_module", "finit_module", "kexec_load", "reboot", "swapon"} & allowed
    assert "read" in allowed
    assert config["process"]["oomScoreAdj"] == 0


def test_process_comes_from_image_and_container():
    config = build(env=["FROM_IMAGE=2", "X=y"])
    assert config["process"]["args"] == ["sh"]
    assert config["process"]["env"] == ["PATH=/bin", "FROM_IMAGE=2", "X=y"]
    assert config["process"]["cwd"] == "/srv"
    assert config["hostname"] == "web"
    assert config["root"] == {"path": "/b/rootfs", "readonly": False}
    assert config["linux"]["cgroupsPath"] == "/labagent/c/ctr"
    hosts = [m for m in config["mounts"] if m["destination"] == "/etc/hosts"]
    assert hosts and hosts[0]["source"] == "/b/hosts"


def test_entrypoint_replaces_image_cmd():
    assert build(entrypoint=["httpd"], cmd=["-f"])["process"]["args"] == ["httpd", "-f"]
    assert build(entrypoint=["httpd"])["process"]["args"] == ["httpd"]
    assert build(cmd=["echo", "hi"], hostname="box")["hostname"] == "box"


def test_pid_mode_host_shares_only_the_pid_namespace():
    types = {ns["type"] for ns in build(pid_mode="host")["linux"]["namespaces"]}
    assert "pid" not in types
    assert {"network", "ipc", "uts", "mount", "cgroup"} <= types
