"""HostConfig options beyond the core create body: log driver, memory extras, cpusets, UTS mode,
rlimits, /dev/shm size, sysctls, runtime and isolation.

Each is honoured as the kernel (cgroup v2, crun) really does it, or refused with a 400 naming it.
Options dockerd accepts but discards on cgroup v2 (MemorySwappiness, KernelMemory) are accepted
with the warning dockerd gives, returned in the create response's Warnings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..containers.model import CreateSpec
from ..containers.ocispec import ULIMITS
from ..errors import BadParameter
from ..units import parse_bytes, parse_memory

T = TypeVar("T")
LOG_DRIVERS = ("json-file", "none")
# json-file options this engine implements; max-file only counts with max-size, as in dockerd
LOG_OPTS = ("max-file",)
RUNTIMES = ("", "crun")
ISOLATIONS = ("", "default")
MAX_SHM = 1 << 40
CPUSET_RE = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
# namespaced sysctls dockerd lets a container set (the IPC ones need a private IPC namespace)
SYSCTLS_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
SYSCTL_VALUE_RE = re.compile(r"[A-Za-z0-9 ._:/-]{1,256}")
GROUP_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
SYSCTL_KEY_RE = re.compile(r"net\.[a-z0-9_.-]{1,200}")
SWAPPINESS_WARNING = ("Your kernel does not support memory swappiness capabilities or the cgroup is not "
                      "mounted. Memory swappiness discarded.")
KERNEL_MEMORY_WARNING = ("Your kernel does not support kernel memory limit capabilities or the cgroup is "
                         "not mounted. Limitation discarded.")


def log_config(value: Any) -> dict[str, Any]:
    """LogConfig as inspect shows it: Type "" is json-file; an unknown driver in dockerd's words."""
    if value is None:
        return {"Type": "json-file", "Config": {}}
    if not isinstance(value, dict):
        raise BadParameter("HostConfig.LogConfig must be an object")
    kind = value.get("Type") or "json-file"
    config = value.get("Config") or {}
    if not isinstance(kind, str) or not isinstance(config, dict):
        raise BadParameter("HostConfig.LogConfig: Type must be a string and Config an object")
    if kind not in LOG_DRIVERS:
        raise BadParameter(f"logger: no log driver named '{kind[:64]}' is registered")
    for key, opt in config.items():
        if kind == "none":
            raise BadParameter(f"HostConfig.LogConfig.Config: unknown log opt '{str(key)[:64]}' for none log driver")
        if key not in LOG_OPTS:
            raise BadParameter(f"HostConfig.LogConfig.Config {str(key)[:64]!r} is not supported by this engine "
                               f"(json-file here takes only {', '.join(LOG_OPTS)}; logs are not rotated)")
        if not isinstance(opt, str) or not opt.isdigit() or int(opt) < 1:
            raise BadParameter("HostConfig.LogConfig.Config: max-file cannot be less than 1")
    if kind == "none":
        raise BadParameter("HostConfig.LogConfig.Type='none' is not supported by this engine yet "
                           "(its logs are always kept as json-file)")
    return {"Type": kind, "Config": {str(k): str(v) for k, v in config.items()}}


def _choice(host: dict[str, Any], field: str, allowed: tuple[str, ...], hint: str) -> str:
    value = host.get(field) or ""
    if not isinstance(value, str) or value not in allowed:
        raise BadParameter(f"HostConfig.{field}={_short(value)} is not supported by this engine ({hint})")
    return value


def _cpuset(value: Any, field: str, available: set[int]) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not CPUSET_RE.fullmatch(value):
        raise BadParameter(f"Invalid value {str(value)[:40]} for {field}")
    wanted: set[int] = set()
    for part in value.split(","):
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if last < first or last > 4096:
            raise BadParameter(f"Invalid value {value[:40]} for {field}")
        wanted.update(range(first, last + 1))
    if not wanted <= available:
        raise BadParameter(f"Requested {field}: {value[:40]} are not available - usable: "
                           f"{','.join(str(n) for n in sorted(available))}")
    return value


def node_cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def node_mems() -> set[int]:
    try:
        text = open("/sys/devices/system/node/online").read().strip()  # noqa: SIM115
    except OSError:
        return {0}
    mems: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            mems.update(range(int(lo), int(hi or lo) + 1))
    return mems or {0}


def _ulimits(value: Any) -> list[dict[str, Any]]:
    if value in (None, []):
        return []
    if not isinstance(value, list):
        raise BadParameter("HostConfig.Ulimits must be a list")
    out: dict[str, dict[str, Any]] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            raise BadParameter("HostConfig.Ulimits entries must be objects with Name, Soft and Hard")
        name = item["Name"]
        soft, hard = item.get("Soft", 0), item.get("Hard", 0)
        if name not in ULIMITS:
            raise BadParameter(f"HostConfig.Ulimits: invalid ulimit type: {name[:32]}")
        if not all(isinstance(n, int) and not isinstance(n, bool) and -1 <= n < 1 << 63 for n in (soft, hard)):
            raise BadParameter(f"HostConfig.Ulimits {name}: Soft and Hard must be integers")
        if soft > hard >= 0 or (soft == -1 and hard != -1):
            raise BadParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        out[name] = {"Name": name, "Soft": soft, "Hard": hard}
    return list(out.values())


def _sysctls(value: Any) -> dict[str, str]:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise BadParameter("HostConfig.Sysctls must be an object")
    out = {}
    for key, val in value.items():
        key = str(key)
        if not isinstance(val, str) or not SYSCTL_VALUE_RE.fullmatch(val):
            raise BadParameter(f"HostConfig.Sysctls {key[:64]!r}: invalid value")
        if key.startswith("net."):
            if not SYSCTL_KEY_RE.fullmatch(key) or ".." in key:  # every container has its own netns
                raise BadParameter(f"sysctl {key[:64]!r} is not allowed")
        elif not (key in SYSCTLS_IPC or key.startswith("fs.mqueue.")) or ".." in key or "/" in key:
            raise BadParameter(f"sysctl {key[:64]!r} is not whitelisted (only namespaced net.*, "
                               "kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* are)")
        out[key] = val
    return out


def _swap(spec: CreateSpec, swap: Any) -> None:
    lim = spec.limits
    if swap in (None, 0, ""):
        return
    value = -1 if swap in (-1, "-1") else parse_bytes(swap)
    if not lim.memory:
        raise BadParameter("You should always set the Memory limit when using Memoryswap limit")
    if value != -1 and value < lim.memory:
        raise BadParameter("Minimum memoryswap limit should be larger than memory limit, see usage for details")
    lim.swap = value


def _reservation(spec: CreateSpec, value: Any) -> None:
    reservation = parse_memory(value)
    if reservation < 0 or (reservation and spec.limits.memory and reservation > spec.limits.memory):
        raise BadParameter("Minimum memory limit can not be less than memory reservation limit, "
                           "see usage for details")
    spec.limits.reservation = reservation


def _shm(value: Any) -> int:
    shm = parse_bytes(value) if value not in (None, "") else 0
    if not 0 <= shm <= MAX_SHM:
        raise BadParameter(f"{shm} is out of range (0 to 1 TiB)")
    return shm or 64 << 20


def _swappiness(value: Any) -> list[str]:
    if value is None or value == -1:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise BadParameter(f"Invalid value: {_short(value)}, valid memory swappiness range is 0-100")
    return [SWAPPINESS_WARNING]  # cgroup v2 has no per-cgroup swappiness: dockerd discards it


def _kernel_memory(value: Any) -> list[str]:
    if value in (None, 0):
        return []
    parse_bytes(value)
    return [KERNEL_MEMORY_WARNING]  # no kmem limit on cgroup v2: dockerd discards it


def _group_add(value: Any) -> list[str]:
    """Names or gids, resolved in the container's /etc/group at each start (users.resolve)."""
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > 64:
        raise BadParameter("must be a list of at most 64 group names or ids")
    groups = []
    for item in value:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) and item >= 0 else item
        if not isinstance(text, str) or not GROUP_RE.fullmatch(text):
            raise BadParameter(f"invalid group {_short(item)}")
        groups.append(text)
    return groups


def _init(value: Any) -> None:
    if value not in (None, False):
        raise BadParameter(f"{_short(value)} is not supported by this engine: the node has no init binary "
                           "(docker-init or tini) to run as the container's pid 1")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _named(field: str, step: Callable[[Any], T], value: Any) -> T:
    """Run one field's step; its refusal names the field."""
    try:
        return step(value)
    except BadParameter as exc:
        if f"HostConfig.{field}" in exc.message:
            raise
        raise BadParameter(f"HostConfig.{field}: {exc.message}") from None


def read(spec: CreateSpec, body: dict[str, Any], host: dict[str, Any]) -> None:
    """Read the options into spec.options and spec.limits (called from createbody.spec_from_body)."""
    _named("Init", _init, host.get("Init"))
    _named("MemorySwap", lambda v: _swap(spec, v), host.get("MemorySwap"))
    _named("MemoryReservation", lambda v: _reservation(spec, v), host.get("MemoryReservation"))
    spec.limits.cpuset_cpus = _named("CpusetCpus", lambda v: _cpuset(v, "CpusetCpus", node_cpus()),
                                     host.get("CpusetCpus"))
    spec.limits.cpuset_mems = _named("CpusetMems", lambda v: _cpuset(v, "CpusetMems", node_mems()),
                                     host.get("CpusetMems"))
    opts: dict[str, Any] = {"LogConfig": log_config(host.get("LogConfig"))}  # dockerd's own wording
    opts["Runtime"] = _choice(host, "Runtime", RUNTIMES, "the only runtime is crun") or "crun"
    opts["Isolation"] = _choice(host, "Isolation", ISOLATIONS, "Linux containers have only the default")
    opts["UTSMode"] = _choice(host, "UTSMode", ("", "host"), "use host or leave it empty")
    if opts["UTSMode"] == "host" and body.get("Hostname"):
        raise BadParameter("Conflicting options: hostname and HostConfig.UTSMode=host")
    opts["Ulimits"] = _named("Ulimits", _ulimits, host.get("Ulimits"))
    opts["ShmSize"] = _named("ShmSize", _shm, host.get("ShmSize"))
    opts["Sysctls"] = _named("Sysctls", _sysctls, host.get("Sysctls"))
    opts["GroupAdd"] = _named("GroupAdd", _group_add, host.get("GroupAdd"))
    opts["Warnings"] = [*_named("MemorySwappiness", _swappiness, host.get("MemorySwappiness")),
                        *_named("KernelMemory", _kernel_memory, host.get("KernelMemory"))]
    spec.options = opts
