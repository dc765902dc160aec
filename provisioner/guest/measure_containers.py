"""Runs inside a node (as root): what one container costs, measured on this node.

Container start latency through the engine (API create + start until running) against bare
`crun run` of an equivalent bundle, a running container's memory.current, and the disk its
image layers and upper dir take. Sent over SSH by `lab report` and bench/bench.py; stdlib
only, like the guest agent. Prints one JSON line.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SOCKET = "/run/lab-agent/engine.sock"
LAYERS = "/var/lib/lab-agent/layers"
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


class UnixConnection(http.client.HTTPConnection):
    def __init__(self) -> None:
        super().__init__("localhost", timeout=60)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(SOCKET)


def api(method: str, path: str, body: object | None = None) -> object:
    connection = UnixConnection()
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.status >= 400:
        raise SystemExit(f"{method} {path}: {response.status} {data!r}")
    return json.loads(data) if data.strip() else None


def engine_start_seconds() -> float:
    """API create + start, until the engine reports the process running."""
    started = time.monotonic()
    created = api("POST", "/v1.43/containers/create", {"Image": "busybox", "Cmd": ["sleep", "60"]})
    cid = created["Id"]  # type: ignore[index]
    api("POST", f"/v1.43/containers/{cid}/start")
    while not api("GET", f"/v1.43/containers/{cid}/json")["State"]["Running"]:  # type: ignore[index]
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    api("DELETE", f"/v1.43/containers/{cid}?force=1")
    return elapsed


def busybox_layer() -> str:
    image = api("GET", "/v1.43/images/busybox/json")
    diff_id = image["RootFS"]["Layers"][0]  # type: ignore[index]
    return os.path.join(LAYERS, diff_id.removeprefix("sha256:"))


def bare_bundle(rootfs: str) -> str:
    bundle = tempfile.mkdtemp(prefix="bench-bundle-")
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as handle:
        config = json.load(handle)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sleep", "60"]
    config["root"] = {"path": rootfs, "readonly": True}
    with open(os.path.join(bundle, "config.json"), "w") as handle:
        json.dump(config, handle)
    return bundle


def crun_start_seconds(bundle: str, index: int) -> float:
    """`crun run --detach` of an equivalent bundle: returns once the process runs."""
    name = f"bench-{os.getpid()}-{index}"
    started = time.monotonic()
    subprocess.run(["crun", "run", "--detach", "--bundle", bundle, name], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    subprocess.run(["crun", "delete", "--force", name], check=False)
    return elapsed


def engine_rss_kib() -> int:
    pid = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", "lab-agent"],
                         capture_output=True, text=True).stdout.strip()
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def disk_bytes(path: str) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                pass
    return total


def running_container_costs() -> dict[str, int]:
    """memory.current of an idle container, and the disk of its layers and upper dir."""
    cid = api("POST", "/v1.43/containers/create", {"Image": "busybox", "Cmd": ["sleep", "60"]})["Id"]  # type: ignore[index]
    api("POST", f"/v1.43/containers/{cid}/start")
    try:
        time.sleep(1)
        exec_id = api("POST", f"/v1.43/containers/{cid}/exec",
                      {"Cmd": ["cat", "/sys/fs/cgroup/memory.current"], "AttachStdout": True})["Id"]  # type: ignore[index]
        connection = UnixConnection()
        connection.request("POST", f"/v1.43/exec/{exec_id}/start", body=json.dumps({"Detach": False}),
                           headers={"Content-Type": "application/json"})
        raw = connection.getresponse().read()
        connection.close()
        memory = int(raw[8:].decode().split()[0]) if len(raw) > 8 else 0
        graph = api("GET", f"/v1.43/containers/{cid}/json")["GraphDriver"]["Data"]  # type: ignore[index]
        layers = sum(disk_bytes(lower) for lower in graph["LowerDir"].split(":"))
        upper = disk_bytes(graph["UpperDir"])
    finally:
        api("DELETE", f"/v1.43/containers/{cid}?force=1")
    return {"container_memory_bytes": memory, "layers_bytes": layers, "upper_bytes": upper}


def main() -> None:
    engine_start_seconds()  # warm caches once, as a user's second container would
    engine = [engine_start_seconds() for _ in range(RUNS)]
    bundle = bare_bundle(busybox_layer())
    try:
        crun_start_seconds(bundle, -1)
        bare = [crun_start_seconds(bundle, i) for i in range(RUNS)]
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
    print(json.dumps({
        "engine_median_s": statistics.median(engine), "engine_all_s": engine,
        "crun_median_s": statistics.median(bare), "crun_all_s": bare,
        "engine_rss_kib": engine_rss_kib(), **running_container_costs(),
    }))


if __name__ == "__main__":
    main()
