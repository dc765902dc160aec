"""Runs inside a node (as root): what one container costs, measured on this node.

Container start latency through the engine (API create + start until running) against bare
`crun run` of an equivalent bundle, a running container's memory.current, and the disk its
image layers and upper dir take. Run by `lab report` and bench/bench.py as
`sudo env PYTHONPATH=$AGENT_DIR python3 -m labagent.measure.containers [RUNS]` (AGENT_DIR is
in labagent.contract); stdlib only, like the rest of the agent. Prints one JSON line.

"Equivalent" bundle: config.json comes from the agent's own generator
(labagent.containers.ocispec.build_config) for the same image and
command, so it has the same six namespaces, cgroup v2 limits and cgroup placement under the
engine's group, capabilities, no-new-privileges, masked and read-only paths, seccomp
profile, devices and mounts (/etc/hosts, hostname, resolv.conf binds). Its rootfs is an
overlay of the same image layers with a fresh upper dir, mounted before the clock starts.
The one difference is deliberate: crun creates a new, empty network namespace itself,
because the engine's veth and address are engine work and count as its overhead. The
engine and bare runs alternate, so noise on the (shared, emulated) host hits both alike,
and each one starts on a quiet node (see settle): on one vCPU, work that the previous run
set off (a netns torn down, the engine's pool refilling, systemd noticing a mount) would
otherwise land in whichever run came next.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import contract
from ..client import ApiError, Client
from ..containers import ocispec
from ..containers.logs import STDOUT
from ..containers.model import Container, CreateSpec
from ..libc import CLONE_NEWNS, LIBC, MS_REC, MS_SLAVE, check
from ..runtime.overlay import Mounter

LAYERS = contract.LAYERS_DIR
BARE_CGROUP_PARENT = "labagent"  # the engine's group: controllers already enabled there
DEFAULT_RUNS = 10
CLIENT = Client(timeout=60)


def api(method: str, path: str, body: object | None = None, query: dict[str, Any] | None = None) -> Any:
    """One engine API call (the engine's own client); an error reply ends the measurement."""
    try:
        return CLIENT.json(method, path, query, body)
    except ApiError as exc:
        raise SystemExit(f"{method} {path}: {exc.status} {exc.message}") from None


def exec_output(exec_id: str) -> bytes:
    """An exec session's stdout, started attached and read to its end."""
    try:
        frames = CLIENT.frames("POST", f"/exec/{exec_id}/start", body={"Detach": False})
        return b"".join(data for stream, data in frames if stream == STDOUT)
    except ApiError as exc:
        raise SystemExit(f"POST /exec/{exec_id}/start: {exc.status} {exc.message}") from None


def cpu_idle_share(window: float) -> float:
    """The share of the CPU's time that was idle over the next `window` seconds."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all

    idle0, total0 = sample()
    time.sleep(window)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def settle(timeout: float = 3.0) -> None:
    """Wait (at most `timeout`) until the node's CPU has been idle for 100 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and cpu_idle_share(0.1) < 0.9:
        pass


def engine_start_seconds(quiet: bool = True) -> float:
    """API create + start, until the process runs.

    This engine answers start only once crun has written the container's pid, as
    `crun run --detach` returns only then: the clock stops there. An inspect checks it
    after the clock; were the container not yet running, the clock would run on while
    inspect polls.
    """
    if quiet:
        settle()
    started = time.monotonic()
    cid = api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["sleep", "60"]})["Id"]
    api("POST", f"/containers/{cid}/start")
    elapsed = time.monotonic() - started
    while not api("GET", f"/containers/{cid}/json")["State"]["Running"]:
        time.sleep(0.005)
        elapsed = time.monotonic() - started
    api("DELETE", f"/containers/{cid}", query={"force": 1})
    return elapsed


class BareBundle:
    """A bundle as the engine would write it for busybox `sleep 60`, minus the netns path."""

    def __init__(self, index: int) -> None:
        image = api("GET", "/images/busybox/json")
        self.name = f"bench-{os.getpid()}-{index}"
        self.dir = tempfile.mkdtemp(prefix="bench-bundle-")
        self.mounter = Mounter()
        root = os.path.join(self.dir, "rootfs")
        for sub in ("upper", "work", "rootfs"):
            os.mkdir(os.path.join(self.dir, sub))
        lowers = [Path(LAYERS, d.removeprefix("sha256:")) for d in image["RootFS"]["Layers"]]
        self.mounter.mount(lowers, Path(self.dir, "upper"), Path(self.dir, "work"), Path(root))
        spec = CreateSpec(image="busybox", image_id=image["Id"], cmd=["sleep", "60"])
        container = Container(self.name, self.name, "", spec)
        config = ocispec.build_config(container, {"config": image["Config"]}, Path(self.dir),
                                      Path(root), None, f"/{BARE_CGROUP_PARENT}/{self.name}")
        with open(os.path.join(self.dir, "config.json"), "w") as handle:
            json.dump(config, handle)
        for name, text in (("hostname", f"{self.name}\n"), ("hosts", "127.0.0.1\tlocalhost\n"),
                           ("resolv.conf", "nameserver 10.0.2.3\n")):
            with open(os.path.join(self.dir, name), "w") as handle:
                handle.write(text)

    def run_seconds(self) -> float:
        """`crun run --detach`: returns once the container's process runs."""
        started = time.monotonic()
        subprocess.run(["crun", "run", "--detach", "--bundle", self.dir, self.name], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        return time.monotonic() - started

    def remove(self) -> None:
        subprocess.run(["crun", "delete", "--force", self.name], check=False, capture_output=True)
        self.mounter.unmount(Path(self.dir, "rootfs"))
        with contextlib.suppress(OSError):
            os.rmdir(f"/sys/fs/cgroup/{BARE_CGROUP_PARENT}/{self.name}")
        shutil.rmtree(self.dir, ignore_errors=True)


def crun_start_seconds(index: int, quiet: bool = True) -> float:
    bundle = BareBundle(index)
    try:
        if quiet:
            settle()
        return bundle.run_seconds()
    finally:
        bundle.remove()


def engine_rss_kib() -> int:
    pid = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", contract.UNIT],
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
    cid = api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["sleep", "60"]})["Id"]
    api("POST", f"/containers/{cid}/start")
    try:
        time.sleep(1)
        exec_id = api("POST", f"/containers/{cid}/exec",
                      {"Cmd": ["cat", "/sys/fs/cgroup/memory.current"], "AttachStdout": True})["Id"]
        words = exec_output(exec_id).decode().split()
        memory = int(words[0]) if words else 0
        graph = api("GET", f"/containers/{cid}/json")["GraphDriver"]["Data"]
        layers = sum(disk_bytes(lower) for lower in graph["LowerDir"].split(":"))
        upper = disk_bytes(graph["UpperDir"])
    finally:
        api("DELETE", f"/containers/{cid}", query={"force": 1})
    return {"container_memory_bytes": memory, "layers_bytes": layers, "upper_bytes": upper}


def private_mounts() -> None:
    """Mount the bare bundles where the engine mounts its rootfs: out of systemd's sight.

    The engine keeps its mounts in a mount namespace of its own (labagent.runtime.mountns), so
    systemd does not react to them; the bare side gets the same, or its unmounts would set
    systemd off during the engine's next start. Needs a single-threaded process: first.
    """
    try:
        check(LIBC.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        check(LIBC.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "make / a slave")
    except OSError as exc:
        raise SystemExit(f"cannot make a private mount namespace: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    """Quiet runs (each on a settled node) are the figures; back-to-back runs show what
    one start's leftovers cost the next, which a burst of starts would see."""
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else DEFAULT_RUNS
    private_mounts()
    engine_start_seconds()  # warm caches once, as a user's second container would
    crun_start_seconds(-1)
    figures: dict[str, object] = {}
    for mode, quiet in (("", True), ("back_to_back_", False)):
        engine: list[float] = []
        bare: list[float] = []
        for index in range(runs):  # alternating, so both see the same noise
            engine.append(engine_start_seconds(quiet))
            bare.append(crun_start_seconds(index + (0 if quiet else runs), quiet))
        figures.update({
            f"engine_{mode}median_s": statistics.median(engine), f"engine_{mode}all_s": engine,
            f"crun_{mode}median_s": statistics.median(bare), f"crun_{mode}all_s": bare,
        })
    print(json.dumps({**figures, "engine_rss_kib": engine_rss_kib(), **running_container_costs()}))


if __name__ == "__main__":
    main()
