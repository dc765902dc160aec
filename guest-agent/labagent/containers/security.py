"""Docker's default confinement: capabilities, /proc masking, devices and a seccomp allow-list."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import BadParameter

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

# Every capability Linux defines (capability.h, 0 to 40), to tell a typo from a real name.
ALL_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

SECCOMP_DATA = Path(__file__).with_name("seccomp.json")
OCI_RULE_KEYS = ("names", "action", "errnoRet", "args")


def normalize_caps(names: Any, field: str) -> list[str]:
    """CapAdd/CapDrop as Docker reads them: case-insensitive, CAP_ optional, "ALL" kept as is."""
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadParameter(f"{field} must be a list of capability names")
    out: list[str] = []
    for name in names:
        cap = name.strip().upper()
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap != "ALL" and cap not in ALL_CAPS:
            raise BadParameter(f'{field}: unknown capability: "{cap}"')
        if cap not in out:
            out.append(cap)
    return out


def check_cap_add(add: list[str]) -> None:
    """CapAdd may only give back what CapDrop took: this engine grants nothing beyond the default set."""
    for cap in add:
        if cap not in DEFAULT_CAPS:
            raise BadParameter(f"HostConfig.CapAdd: {cap} is not supported by this engine: a container "
                               "holds at most Docker's default capabilities (CapAdd can only restore "
                               "one of those after CapDrop)")


def effective_caps(add: Iterable[str] = (), drop: Iterable[str] = ()) -> list[str]:
    """Docker's rule: drop ALL keeps only what is added, else default minus drop plus add."""
    add, drop = list(add), list(drop)
    if "ALL" in drop:
        base: list[str] = []
    else:
        base = [cap for cap in DEFAULT_CAPS if cap not in drop]
    return base + [cap for cap in add if cap not in base and cap != "ALL"]


def capabilities(caps: Iterable[str] = DEFAULT_CAPS) -> dict[str, list[str]]:
    caps = list(caps)
    return {"bounding": caps, "effective": caps, "permitted": caps}


@functools.cache
def _seccomp_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SECCOMP_DATA.read_text())
    return data


def seccomp_profile(caps: Iterable[str] = DEFAULT_CAPS, machine: str | None = None) -> dict[str, Any]:
    """linux.seccomp for crun, from seccomp.json: the rules this container's caps and machine earn."""
    data = _seccomp_data()
    held = set(caps)
    machine = machine or os.uname().machine
    rules = []
    for rule in data["syscalls"]:
        if not set(rule.get("caps", ())) <= held:
            continue
        if "machines" in rule and machine not in rule["machines"]:
            continue
        # copied: the cached data must not be changed through a container's config
        rules.append(json.loads(json.dumps({key: rule[key] for key in OCI_RULE_KEYS if key in rule})))
    return {
        "defaultAction": data["defaultAction"],
        "defaultErrnoRet": data["defaultErrnoRet"],
        "architectures": list(data["architectures"].get(machine, [])),
        "syscalls": rules,
    }


def _char(major: int, minor: int | None) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": "rwm"}
    if minor is not None:
        rule["minor"] = minor
    return rule


def device_rules() -> list[dict[str, Any]]:
    """Deny every device, then allow the ones every container gets (null, zero, tty, pts...)."""
    return [
        {"allow": False, "access": "rwm"},
        *(_char(1, minor) for minor in (3, 5, 7, 8, 9)),
        *(_char(5, minor) for minor in (0, 1, 2)),
        _char(136, None),
    ]
