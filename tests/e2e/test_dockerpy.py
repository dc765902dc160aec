"""docker-py, unchanged, drives node1 of the shared two-node lab through `lab docker-env`.

Each test covers one area of the Docker Engine API as docker-py uses it: keep-alive across
stop/wait/remove, exec modes, container operations, archives, restart policies and health,
images, networks with names, volumes and mounts, events and system figures. Real VM, real
engine, real containers; every object a test makes is removed by it.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from .conftest import Lab

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.e2e
LAB, NODE = "two-node", "node1"


@pytest.fixture(scope="module")
def host(lab: Lab, two_node: str) -> Iterator[str]:
    env = lab("docker-env", LAB, NODE).stdout
    yield env.split("DOCKER_HOST=", 1)[1].split()[0].strip("'\"")
    lab("docker-env", "--unset", LAB, NODE, check=False)


@pytest.fixture
def sdk(host: str) -> Iterator[Any]:
    client = docker.DockerClient(base_url=host, timeout=120)
    before = {c.id for c in client.containers.list(all=True)}
    yield client
    for c in client.containers.list(all=True):
        if c.id not in before:
            c.remove(force=True, v=True)
    client.close()


def node(lab: Lab, command: str) -> str:
    return lab("exec", LAB, NODE, "--", command).stdout


def state(ctr: Any) -> dict[str, Any]:
    """The container's inspect, fetched again."""
    ctr.reload()
    attrs: dict[str, Any] = ctr.attrs
    return attrs


def until(check: Any, timeout: float = 60, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return check()


def test_one_kept_alive_connection_serves_stop_wait_remove_and_more(lab: Lab, host: str) -> None:
    bridges_before = node(lab, "pgrep -c socat || true").strip()
    client = docker.DockerClient(base_url=host, timeout=120)
    ctr = client.containers.run("busybox", ["sleep", "300"], detach=True)
    assert ctr.exec_run(["sh", "-c", "echo hi; exit 3"]) == (3, b"hi\n")
    ctr.stop(timeout=1)
    assert ctr.wait(timeout=60)["StatusCode"] == 137
    ctr.remove()
    for _ in range(10):
        assert client.api.version()["ApiVersion"] == "1.43"
    fresh = docker.DockerClient(base_url=host, timeout=60)
    assert fresh.version()["ApiVersion"] == "1.43"
    assert fresh.containers.run("busybox", ["echo", "gone"], remove=True) == b"gone\n"
    assert not [c for c in fresh.containers.list(all=True) if c.id == ctr.id]
    fresh.close()
    client.close()
    # the clients are gone, and so is every bridge their connections opened: no channel leaks
    assert until(lambda: node(lab, "pgrep -c socat || true").strip() == bridges_before, 30)


def test_exec_run_in_its_modes(sdk: Any) -> None:
    ctr = sdk.containers.run("busybox", ["sleep", "300"], detach=True, environment={"BASE": "b"})
    assert ctr.exec_run(["sh", "-c", "echo $BASE-$X; pwd; id -u"], environment={"X": "x"},
                        workdir="/tmp", user="nobody") == (0, b"b-x\n/tmp\n65534\n")
    out, err = ctr.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True).output
    assert (out, err) == (b"out\n", b"err\n")
    streamed = ctr.exec_run(["sh", "-c", "echo 1; echo 2"], stream=True).output
    assert b"".join(streamed) == b"1\n2\n"
    tty = ctr.exec_run(["sh", "-c", "tty; echo raw"], tty=True)
    assert tty.exit_code == 0 and tty.output.startswith(b"/dev/pts/") and b"raw" in tty.output
    sock = ctr.exec_run(["cat"], stdin=True, socket=True).output
    raw = getattr(sock, "_sock", sock)
    raw.sendall(b"through stdin\n")
    raw.shutdown(1)  # half-close: cat sees end-of-file and exits
    received = b""
    while chunk := raw.recv(4096):
        received += chunk
    assert b"through stdin" in received
    detached = ctr.exec_run(["sh", "-c", "sleep 1; exit 9"], detach=True)
    assert not detached.output and detached.exit_code is None


def test_container_operations(sdk: Any) -> None:
    ctr = sdk.containers.run("busybox", ["sh", "-c", "trap 'echo got-hup' HUP; while true; do sleep 1; done"],
                             detach=True, labels={"suite": "e2e", "tier": "one"}, mem_limit="64m")
    assert "sleep" in " ".join(" ".join(p) for p in ctr.top()["Processes"])
    stats = ctr.stats(stream=False)
    assert stats["memory_stats"]["usage"] > 0 and stats["memory_stats"]["limit"] == 64 << 20
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and stats["pids_stats"]["current"] >= 1
    ctr.pause()
    ctr.reload()
    assert ctr.status == "paused" and ctr.attrs["State"]["Paused"] is True
    ctr.unpause()
    ctr.update(mem_limit="96m", memswap_limit="96m")
    ctr.reload()
    assert ctr.status == "running" and ctr.attrs["HostConfig"]["Memory"] == 96 << 20
    ctr.rename("renamed-e2e")
    assert sdk.containers.get("renamed-e2e").id == ctr.id
    assert [c.id for c in sdk.containers.list(filters={"label": "tier=one"})] == [ctr.id]
    assert sdk.containers.list(filters={"label": "tier=two"}) == []
    ctr.kill(signal="SIGHUP")
    assert until(lambda: b"got-hup" in ctr.logs(), 30)
    ctr.kill()
    assert ctr.wait(timeout=60)["StatusCode"] == 137
    assert ctr.id in [c.id for c in sdk.containers.list(all=True, filters={"status": "exited"})]


def test_archives_both_ways_export_and_changes(sdk: Any, tmp_path: Any) -> None:
    ctr = sdk.containers.run("busybox", ["sh", "-c", "rm /bin/vi; echo made > /made; sleep 300"], detach=True)
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("put.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"put-me"))
    assert ctr.put_archive("/tmp", payload.getvalue())
    assert ctr.exec_run(["cat", "/tmp/put.txt"]).output == b"put-me"
    until(lambda: ctr.exec_run(["cat", "/made"]).exit_code == 0, 30)
    stream, stat = ctr.get_archive("/made")
    assert stat["name"] == "made" and stat["size"] == 5
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        assert tar.extractfile("made").read() == b"made\n"  # type: ignore[union-attr]
    changes = {c["Path"]: c["Kind"] for c in ctr.diff()}
    assert changes.get("/made") == 1 and changes.get("/bin/vi") == 2
    exported = b"".join(ctr.export())
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = set(tar.getnames())
    assert {"made", "bin/busybox"} <= {n.lstrip("./") for n in names}
    with pytest.raises(docker.errors.NotFound):
        ctr.get_archive("/no/such/path")


def test_restart_policies_and_health(lab: Lab, sdk: Any) -> None:
    flaky = sdk.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True,
                               restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    assert until(lambda: (state(flaky)["RestartCount"], flaky.status) == (2, "exited"), 90)
    healthy = sdk.containers.run("busybox", ["sleep", "300"], detach=True, healthcheck={
        "Test": ["CMD-SHELL", "test -f /tmp/ok"], "Interval": 1_000_000_000, "Retries": 1})
    assert until(lambda: state(healthy)["State"]["Health"]["Status"] == "unhealthy", 60)
    healthy.exec_run(["touch", "/tmp/ok"])
    assert until(lambda: state(healthy)["State"]["Health"]["Status"] == "healthy", 60)
    # an `always` container whose process died while the engine was down runs again after it
    always = sdk.containers.run("busybox", ["sleep", "300"], detach=True, restart_policy={"Name": "always"})
    pid = state(always)["State"]["Pid"]
    node(lab, f"sudo systemctl stop lab-agent && sudo kill -9 {pid} && sudo systemctl start lab-agent")
    assert until(lambda: state(always)["State"]["Pid"] not in (0, pid) and always.status == "running", 90)


def test_images_save_load_tag_history_prune(sdk: Any) -> None:
    image = sdk.images.get("busybox")
    assert image.tag("e2e/saved", "v1")
    saved = b"".join(sdk.images.get("e2e/saved:v1").save(named="e2e/saved:v1"))
    sdk.images.remove("e2e/saved:v1")
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get("e2e/saved:v1")
    loaded = sdk.images.load(saved)
    assert "e2e/saved:v1" in loaded[0].tags and loaded[0].id == image.id
    assert sdk.images.get("e2e/saved:v1").history()
    sdk.images.remove("e2e/saved:v1")
    assert "busybox:latest" in sdk.images.get("busybox").tags  # untagging kept the image
    assert "ImagesDeleted" in sdk.images.prune(filters={"dangling": True})


def test_user_networks_resolve_names_and_isolate(sdk: Any) -> None:
    front = sdk.networks.create("e2e-front", driver="bridge")
    back = sdk.networks.create("e2e-back", driver="bridge")
    try:
        web = sdk.containers.run("busybox", ["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 80 -h /tmp"],
                                 detach=True, name="e2e-web", network="e2e-front")
        front.reload()
        assert web.id in front.attrs["Containers"]
        probe = sdk.containers.create("busybox", ["sleep", "300"], name="e2e-probe", network="e2e-front",
                                      networking_config={"e2e-front": sdk.api.create_endpoint_config(
                                          aliases=["prober"])})
        probe.start()
        # busybox wget -T segfaults (on the node too): bound it with timeout instead
        assert probe.exec_run(["timeout", "10", "wget", "-q", "-O", "-", "http://e2e-web/"]) == (0, b"ok\n")
        assert web.exec_run(["ping", "-c", "1", "-W", "5", "prober"]).exit_code == 0
        other = sdk.containers.run("busybox", ["sleep", "300"], detach=True, network="e2e-back")
        web.reload()
        front_ip = web.attrs["NetworkSettings"]["Networks"]["e2e-front"]["IPAddress"]
        assert front_ip
        assert other.exec_run(["ping", "-c", "1", "-W", "2", front_ip]).exit_code != 0  # isolated
        assert other.exec_run(["ping", "-c", "1", "-W", "2", "e2e-web"]).exit_code != 0
        back.connect(web, aliases=["web-on-back"])
        assert other.exec_run(["ping", "-c", "1", "-W", "5", "web-on-back"]).exit_code == 0
        back.disconnect(web)
        with pytest.raises(docker.errors.APIError):
            front.remove()  # still has endpoints
    finally:
        for name in ("e2e-web", "e2e-probe"):
            try:
                sdk.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        for c in sdk.containers.list(all=True, filters={"network": "e2e-back"}):
            c.remove(force=True)
        front.remove()
        back.remove()
    assert not [n for n in sdk.networks.list() if n.name.startswith("e2e-")]


def test_volumes_binds_tmpfs_and_volumes_from(lab: Lab, sdk: Any) -> None:
    vol = sdk.volumes.create("e2e-data", labels={"suite": "e2e"})
    node(lab, "sudo mkdir -p /srv/e2e-bind && echo from-the-node | sudo tee /srv/e2e-bind/f >/dev/null")
    try:
        sdk.containers.run("busybox", ["sh", "-c", "echo kept > /data/v"], remove=True,
                           volumes={"e2e-data": {"bind": "/data", "mode": "rw"}})
        reader = sdk.containers.run(
            "busybox", ["sh", "-c", "cat /data/v /node/f; grep -c ' /scratch tmpfs' /proc/mounts"], detach=True,
            volumes={"e2e-data": {"bind": "/data", "mode": "ro"}, "/srv/e2e-bind": {"bind": "/node", "mode": "ro"}},
            tmpfs={"/scratch": "size=8m"})
        reader.wait(timeout=60)
        assert reader.logs() == b"kept\nfrom-the-node\n1\n"
        sharer = sdk.containers.run("busybox", ["sleep", "300"], detach=True,
                                    volumes={"e2e-data": {"bind": "/shared", "mode": "rw"}})
        borrower = sdk.containers.run("busybox", ["cat", "/shared/v"], detach=True, volumes_from=[sharer.id])
        borrower.wait(timeout=60)
        assert borrower.logs() == b"kept\n"
        with pytest.raises(docker.errors.APIError):
            vol.remove()  # in use
        anon = sdk.containers.run("busybox", ["true"], detach=True, volumes=["/anon"])
        anon.wait(timeout=60)
        anon.reload()
        anon_name = next(m["Name"] for m in anon.attrs["Mounts"] if m["Destination"] == "/anon")
        anon.remove(v=True)
        assert anon_name not in [v.name for v in sdk.volumes.list()]
        for c in (reader, sharer, borrower):
            c.remove(force=True)
    finally:
        vol.remove(force=True)
        node(lab, "sudo rm -rf /srv/e2e-bind")


def test_events_stream_with_filters_and_system_figures(sdk: Any) -> None:
    mark = f"ev-{time.monotonic_ns()}"  # the node's clock is its own: filter by a label, not a time
    ctr = sdk.containers.run("busybox", ["true"], detach=True, labels={"ev": mark})
    ctr.wait(timeout=60)
    node_now = datetime.fromisoformat(sdk.info()["SystemTime"].replace("Z", "+00:00"))
    events = sdk.events(since=1, until=node_now + timedelta(seconds=2), decode=True,
                        filters={"type": "container", "label": f"ev={mark}"})
    actions = [e["Action"] for e in events if e["id"] == ctr.id]
    assert actions[:3] == ["create", "start", "die"]
    seen: list[str] = []
    live = sdk.events(decode=True, filters={"type": "container", "event": "destroy"})
    reader = threading.Thread(target=lambda: seen.extend(e["id"] for e in live), daemon=True)
    reader.start()
    ctr.remove()
    assert until(lambda: ctr.id in seen, 30)
    live.close()
    info, df = sdk.info(), sdk.df()
    assert info["Containers"] == len(sdk.containers.list(all=True)) and info["NCPU"] >= 1
    assert {"LayersSize", "Images", "Containers", "Volumes"} <= set(df)


def test_the_docker_cli_copies_both_ways(lab: Lab, sdk: Any, tmp_path: Any) -> None:
    ctr = sdk.containers.run("busybox", ["sleep", "300"], detach=True, name="e2e-cp")
    (tmp_path / "in.txt").write_text("from the host\n")
    base = ["docker", LAB, NODE, "--"]
    lab(*base, "cp", str(tmp_path / "in.txt"), "e2e-cp:/tmp/in.txt")
    assert ctr.exec_run(["cat", "/tmp/in.txt"]).output == b"from the host\n"
    lab(*base, "cp", "e2e-cp:/etc/hostname", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text().strip() == "e2e-cp"
