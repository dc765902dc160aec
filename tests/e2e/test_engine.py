"""The guest agent in a real two-node lab: crun, namespaces, cgroup v2, overlay layers, DNAT."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from .conftest import Lab

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def engine_lab(two_node: str) -> str:
    return two_node


def on(lab: Lab, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return lab("exec", "two-node", node, "--", command, check=check)


def inspect(lab: Lab, node: str, container: str) -> dict:
    data: list[dict] = json.loads(on(lab, node, f"labctl inspect {container}").stdout)
    return data[0]


def test_lab_file_containers_run_after_create(lab: Lab, engine_lab: str) -> None:
    status = json.loads(lab("status", engine_lab, "--json").stdout)
    containers = {n["name"]: n["containers"] for n in status["nodes"]}
    assert [(c["name"], c["state"]) for c in containers["node1"]] == [("web", "running")]
    assert containers["node2"] == []
    assert inspect(lab, "node1", "web")["HostConfig"]["Memory"] == 64 * 2**20


def test_node2_fetches_a_page_from_a_container_on_node1_over_the_link(lab: Lab, engine_lab: str) -> None:
    on(lab, "node1", "labctl exec web sh -c 'echo served-by-web > /index.html'")
    page = on(lab, "node2", "busybox wget -qO- http://node1:8080/index.html").stdout
    assert page.strip() == "served-by-web"
    # The container port itself is not reachable from outside: only the published one is.
    assert on(lab, "node2", "busybox wget -T 3 -qO- http://node1:80/", check=False).returncode != 0


def test_a_container_shares_the_kernel_but_not_the_pid_namespace(lab: Lab, engine_lab: str) -> None:
    node_kernel = on(lab, "node1", "uname -r").stdout.strip()
    assert on(lab, "node1", "labctl exec web uname -r").stdout.strip() == node_kernel
    assert on(lab, "node1", "labctl exec web cat /proc/1/cmdline | tr '\\0' ' '").stdout.strip() == "httpd -f -p 80"
    assert "sshd" not in on(lab, "node1", "labctl exec web ps").stdout
    pid = inspect(lab, "node1", "web")["State"]["Pid"]
    assert pid > 1 and "httpd" in on(lab, "node1", f"cat /proc/{pid}/cmdline").stdout


def test_container_mounts_and_veths_stay_out_of_the_nodes_services(lab: Lab, engine_lab: str) -> None:
    """What keeps a start cheap on one vCPU: systemd never sees a container's mounts (the
    engine has its own mount namespace), cgroup moves skip the RCU wait (favordynmods),
    and the engine's veths have no IPv6 link-local address, nor a systemd-sysctl run."""
    rootfs = f"/var/lib/lab-agent/containers/{inspect(lab, 'node1', 'web')['Id']}/rootfs"
    engine = on(lab, "node1", "systemctl show -p MainPID --value lab-agent").stdout.strip()
    assert rootfs in on(lab, "node1", f"sudo cat /proc/{engine}/mountinfo").stdout
    assert rootfs not in on(lab, "node1", "sudo cat /proc/1/mountinfo").stdout
    assert "favordynmods" in on(lab, "node1", "grep cgroup2 /proc/mounts").stdout
    veths = [line.split(":")[1].strip().split("@")[0]
             for line in on(lab, "node1", "ip -o link show master labbr0").stdout.splitlines()]
    assert veths, "no veth on the bridge (the web container and the netns pool have some)"
    for veth in veths:
        assert "inet6" not in on(lab, "node1", f"ip -o addr show dev {veth}").stdout
    rule = on(lab, "node1", "cat /etc/udev/rules.d/98-lab-agent-veths.rules").stdout
    assert 'RUN:="/bin/true"' in rule


def test_memory_limit_oom_kills_and_the_kill_is_recorded(lab: Lab, engine_lab: str) -> None:
    done = on(lab, "node1",
              "labctl run --name hog --memory 64M busybox sh -c 'head -c 200m /dev/zero | tail >/dev/null'",
              check=False)
    assert done.returncode != 0
    state = inspect(lab, "node1", "hog")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137


def test_pids_limit_stops_a_fork_loop(lab: Lab, engine_lab: str) -> None:
    done = on(lab, "node1",
              "labctl run --name forks --pids-limit 10 busybox sh -c "
              "'for i in $(seq 1 40); do sleep 30 & done; wait'", check=False)
    assert "can't fork" in done.stdout + done.stderr
    on(lab, "node1", "labctl rm -f forks")


def test_two_containers_share_lower_layers_and_write_only_their_own_upper(lab: Lab, engine_lab: str) -> None:
    on(lab, "node2", "labctl run -d --name a busybox sleep 600; labctl run -d --name b busybox sleep 600")
    on(lab, "node2", "labctl exec a sh -c 'echo from-a > /written-by-a'")
    mounts = {}
    for name in ("a", "b"):
        data = inspect(lab, "node2", name)["GraphDriver"]["Data"]
        mounts[name] = data
    assert mounts["a"]["LowerDir"] == mounts["b"]["LowerDir"]
    assert mounts["a"]["UpperDir"] != mounts["b"]["UpperDir"]
    upper_a, upper_b = mounts["a"]["UpperDir"], mounts["b"]["UpperDir"]
    assert on(lab, "node2", f"sudo cat {upper_a}/written-by-a").stdout.strip() == "from-a"
    assert on(lab, "node2", f"sudo test -e {upper_b}/written-by-a", check=False).returncode != 0
    for lower in mounts["a"]["LowerDir"].split(":"):
        assert on(lab, "node2", f"sudo test -e {lower}/written-by-a", check=False).returncode != 0
    on(lab, "node2", "labctl rm -f a")
    assert on(lab, "node2", f"sudo test -e {upper_a}", check=False).returncode != 0  # gone with the container
    on(lab, "node2", "labctl rm -f b")


def test_restarting_the_engine_keeps_a_running_container(lab: Lab, engine_lab: str) -> None:
    before = inspect(lab, "node1", "web")["State"]["Pid"]
    on(lab, "node1", "sudo systemctl restart lab-agent")
    on(lab, "node1", "for i in $(seq 1 30); do labctl ps >/dev/null 2>&1 && break; sleep 1; done")
    assert "web" in on(lab, "node1", "labctl ps").stdout
    after = inspect(lab, "node1", "web")["State"]
    assert after["Running"] is True and after["Pid"] == before
    assert on(lab, "node2", "busybox wget -qO- http://node1:8080/index.html").stdout.strip() == "served-by-web"


def test_bad_input_gets_a_docker_style_error(lab: Lab, engine_lab: str) -> None:
    unknown = on(lab, "node1", "labctl run -d --name x nosuchimage true", check=False)
    assert unknown.returncode != 0 and "nosuchimage" in unknown.stdout + unknown.stderr
    clash = on(lab, "node1", "labctl run -d --name web busybox true", check=False)
    assert clash.returncode != 0 and "already in use" in clash.stdout + clash.stderr
    port = on(lab, "node1", "labctl run -d --name y -p 8080:80 busybox true", check=False)
    assert port.returncode != 0 and "8080" in port.stdout + port.stderr
    assert "y" not in on(lab, "node1", "labctl ps -a").stdout.split()


def docker_save_tarball(path: Path) -> None:
    """A one-layer docker-save archive, made here on the host."""
    def tar_of(files: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    layer = tar_of({"hello.txt": b"pushed from the host\n"})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello.txt"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["pushed:1"], "Layers": ["layer/layer.tar"]}])
    path.write_bytes(tar_of({"manifest.json": manifest.encode(), config_name: config, "layer/layer.tar": layer}))


def test_image_push_loads_a_host_tarball_into_a_node(lab: Lab, engine_lab: str, tmp_path: Path) -> None:
    archive = tmp_path / "pushed.tar"
    docker_save_tarball(archive)
    assert "pushed:1" in lab("image", "push", engine_lab, "node2", str(archive)).stdout
    assert "pushed" in on(lab, "node2", "labctl images").stdout
    assert "pushed" not in on(lab, "node1", "labctl images").stdout
    missing = lab("image", "push", engine_lab, "node2", str(tmp_path / "nope.tar"), check=False)
    assert missing.returncode == 2 and "no such file" in missing.stderr
