"""Turn a container record into an OCI runtime config.json for crun."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

from ..runtime.cgroups import shares_to_weight
from . import security
from .model import Container, CreateSpec, Limits

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100_000
ULIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}
SHM_DEFAULT = 64 << 20


def merge_env(image_env: list[str], env: list[str]) -> list[str]:
    """Image env first, container env overriding by name; PATH always present."""
    merged: dict[str, str] = {}
    for item in [DEFAULT_PATH, *image_env, *env]:
        key, sep, _ = item.partition("=")
        if sep:
            merged[key] = item
        else:  # `FOO` alone (docker-py's {"FOO": None}) is kept in Config.Env but sets nothing
            merged.pop(key, None)
    return list(merged.values())


def resources(limits: Limits) -> dict[str, Any]:
    """linux.resources for cgroup v2: memory (no swap), CPU quota and weight, pids, devices.

    CpuShares go as `unified` cpu.weight, not as cpu.shares: crun converts cpu.shares itself,
    linearly up to crun 1.22 and on a log-quadratic curve from 1.23, so the weight a container
    starts with would depend on the crun installed while `docker update` writes the linear one.
    """
    res: dict[str, Any] = {"devices": security.device_rules()}
    if limits.memory:  # OCI swap is memory + swap; crun writes memory.swap.max = swap - limit
        res["memory"] = {"limit": limits.memory, "swap": limits.swap or limits.memory}
    if limits.reservation:
        res.setdefault("memory", {})["reservation"] = limits.reservation  # memory.low
    if limits.cpuset_cpus or limits.cpuset_mems:
        cpuset = {"cpus": limits.cpuset_cpus, "mems": limits.cpuset_mems}
        res.setdefault("cpu", {}).update({k: v for k, v in cpuset.items() if v})
    quota, period = cpu_quota(limits)
    if quota:
        res.setdefault("cpu", {}).update({"quota": quota, "period": period})
    if limits.cpu_shares:  # cpu.weight by the engine's formula, the one a live update writes too
        res["unified"] = {"cpu.weight": str(shares_to_weight(limits.cpu_shares))}
    if limits.pids > 0:
        res["pids"] = {"limit": limits.pids}
    return res


def cpu_quota(limits: Limits) -> tuple[int, int]:
    """NanoCpus or CpuQuota/CpuPeriod as the (quota, period) pair cpu.max wants."""
    if limits.nano_cpus:
        return limits.nano_cpus * CPU_PERIOD // 1_000_000_000, CPU_PERIOD
    if limits.cpu_quota > 0:
        return limits.cpu_quota, limits.cpu_period or CPU_PERIOD
    return 0, 0


def rlimits(spec: CreateSpec) -> list[dict[str, Any]]:
    """process.rlimits: the engine's nofile default, replaced by the container's Ulimits."""
    limits = {"nofile": {"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}}
    for u in spec.options.get("Ulimits") or []:
        soft, hard = (resource.RLIM_INFINITY if n == -1 else n for n in (u["Soft"], u["Hard"]))
        limits[u["Name"]] = {"type": ULIMITS[u["Name"]], "soft": soft, "hard": hard}
    return list(limits.values())


def _mounts(bundle: Path, shm: int = SHM_DEFAULT) -> list[dict[str, Any]]:
    nosuid = ["nosuid", "noexec", "nodev"]
    files = [
        {"destination": f"/etc/{name}", "type": "bind", "source": str(bundle / name),
         "options": ["rbind", "rprivate"]}
        for name in ("hosts", "hostname", "resolv.conf")
    ]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": nosuid},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*nosuid, "mode=1777", f"size={shm // 1024}k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nosuid},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*nosuid, "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*nosuid, "relatime", "ro"]},
        *files,
    ]


def with_user_mounts(defaults: list[dict[str, Any]], user: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The container's own mounts (mountplan.oci_mounts) after the defaults, replacing one at the
    same destination (a volume on /etc/hosts, a tmpfs on /dev/shm), as dockerd does."""
    taken = {m["destination"] for m in user}
    return [*(m for m in defaults if m["destination"] not in taken), *user]


def user_spec(spec: CreateSpec, image_config: dict[str, Any]) -> str:
    """Docker's User for this container: the create body's, else the image's USER, else root."""
    img = image_config.get("config") or {}
    return spec.user or str(img.get("User") or "")


def build_config(
    container: Container,
    image_config: dict[str, Any],
    bundle: Path,
    rootfs: Path,
    netns_path: str | None,
    cgroups_path: str,
    user_mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The full config.json; the caller has already resolved the image and limits."""
    spec = container.spec
    img = image_config.get("config") or {}
    entrypoint = spec.entrypoint or list(img.get("Entrypoint") or [])
    cmd = spec.cmd or ([] if spec.entrypoint else list(img.get("Cmd") or []))
    args = [*entrypoint, *cmd]
    shared = {"pid"} if spec.pid_mode == "host" else set()
    if spec.options.get("UTSMode") == "host":
        shared.add("uts")
    namespaces: list[dict[str, str]] = [
        {"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup") if t not in shared
    ]
    net: dict[str, str] = {"type": "network"}
    if netns_path:
        net["path"] = netns_path
    namespaces.insert(1, net)
    caps = security.effective_caps(spec.cap_add, spec.cap_drop)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            # root until the start resolves user_spec() in the mounted rootfs (users.resolve)
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": merge_env(list(img.get("Env") or []), spec.env),
            "cwd": spec.workdir or img.get("WorkingDir") or "/",
            "capabilities": security.capabilities(caps),
            "rlimits": rlimits(spec),
            "noNewPrivileges": True,
            # the engine runs at -500 so that the OOM killer spares it; its containers must not
            "oomScoreAdj": spec.oom_score_adj,
        },
        "root": {"path": str(rootfs), "readonly": spec.readonly_rootfs},
        **({} if "uts" in shared else {"hostname": spec.hostname or container.name}),
        "mounts": with_user_mounts(_mounts(bundle, spec.options.get("ShmSize") or SHM_DEFAULT),
                                   user_mounts or []),
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroups_path,
            "resources": resources(spec.limits),
            "maskedPaths": list(security.MASKED_PATHS),
            "readonlyPaths": list(security.READONLY_PATHS),
            "seccomp": security.seccomp_profile(caps),
            **({"sysctl": dict(spec.options["Sysctls"])} if spec.options.get("Sysctls") else {}),
        },
    }
