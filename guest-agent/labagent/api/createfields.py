"""Every field of a v1.43 POST /containers/create body, and what this engine does with it.

HONOURED fields are read by createbody.py. Every other field is accepted only at a value that
means "not set" and refused with a 400 naming it otherwise, so that no option is dropped
silently. The docker CLI (28) and docker-py send most fields on every create, empty: null, "",
0, false, [], {}, a struct of such values ({"Type": "", "Config": {}}), or a default spelled out
("private", {"Name": "no"}, MemorySwappiness -1); AT_DEFAULT lists those spelled-out defaults
per field. A field this table does not know (a newer API's, say) is held to the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import BadParameter

Accept = Callable[[Any], bool]

# ContainerConfig fields createbody.py reads (Tty and stdin in stdiobody.py).
HONOURED_CONFIG = frozenset({
    "Hostname",
    "User",
    "Env",
    "Cmd",
    "Image",
    "WorkingDir",
    "Entrypoint",
    "Labels",
    "ExposedPorts",
    "Tty",
    "NetworkDisabled",
    "HostConfig",
    "NetworkingConfig",
    "Healthcheck",
    "StopSignal",
    "StopTimeout",
    "Volumes",
    "OpenStdin",
    "StdinOnce",
    "AttachStdin",
})

# HostConfig fields createbody.py reads, itself or through the area modules it calls (createopts,
# stopbody, netbody, mounts, hostlines, dnsconf); Privileged only to refuse it.
HONOURED_HOST = frozenset({
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuQuota",
    "CpuPeriod",
    "PidsLimit",
    "CpuShares",
    "NetworkMode",
    "PortBindings",
    "AutoRemove",
    "PidMode",
    "Privileged",
    "Binds",
    "Mounts",
    "CapAdd",
    "CapDrop",
    "ReadonlyRootfs",
    "SecurityOpt",
    "OomScoreAdj",
    "RestartPolicy",
    "Tmpfs",
    "VolumesFrom",
    "ExtraHosts",
    "Links",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ConsoleSize",
    "MemoryReservation",
    "MemorySwappiness",
    "KernelMemory",
    "CpusetCpus",
    "CpusetMems",
    "Init",
    "Ulimits",
    "LogConfig",
    "ShmSize",
    "Sysctls",
    "UTSMode",
    "Runtime",
    "Isolation",
    "GroupAdd",
})


def boolean(value: Any, field: str) -> bool:
    """A true/false field of the create body (createbody, stdiobody): null is false, else a bool."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadParameter(f"{field} must be true or false")
    return value


def unset(value: Any) -> bool:
    """null, "", 0, false, [] or {}: a map's keys mean something ({"/run": ""} is a tmpfs)."""
    if value is None or value is False or value == "" or value == [] or value == {}:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def blank(value: Any) -> bool:
    """unset, or a struct (not a map) whose every field is blank: {"Type": "", "Config": {}}."""
    return unset(value) or (isinstance(value, dict) and all(blank(v) for v in value.values()))


def one_of(*values: Any) -> Accept:
    return lambda v: unset(v) or any(v == x and type(v) is type(x) for x in values)


def anything(value: Any) -> bool:
    return True


# ContainerConfig fields accepted only at their "not set" value, with the defaults spelled out.
AT_DEFAULT_CONFIG: dict[str, Accept] = {
    "Domainname": unset,
    "AttachStdout": anything,  # the client's wish to attach; attach serves output either way
    "AttachStderr": anything,
    "ArgsEscaped": unset,  # Windows only
    "MacAddress": unset,  # the MAC follows from the address
    "OnBuild": unset,
    "Shell": unset,
}

# HostConfig fields accepted only at their "not set" value, with the defaults spelled out.
AT_DEFAULT_HOST: dict[str, Accept] = {
    # Resources
    "CgroupParent": unset, "BlkioWeight": unset, "BlkioWeightDevice": unset,
    "BlkioDeviceReadBps": unset, "BlkioDeviceWriteBps": unset, "BlkioDeviceReadIOps": unset,
    "BlkioDeviceWriteIOps": unset, "CpuRealtimePeriod": unset, "CpuRealtimeRuntime": unset,
    "Devices": unset, "DeviceCgroupRules": unset,
    "DeviceRequests": unset, "KernelMemoryTCP": unset,
    "OomKillDisable": unset,
    "CpuCount": unset, "CpuPercent": unset,
    "IOMaximumIOps": unset, "IOMaximumBandwidth": unset,
    # the rest of HostConfig
    "ContainerIDFile": anything,  # the docker CLI writes that file itself
    "VolumeDriver": unset,
    "Annotations": unset,
    "CgroupnsMode": one_of("private"),
    "IpcMode": one_of("private", "shareable"),  # both are a private IPC namespace
    "Cgroup": unset,
    "PublishAllPorts": unset,  # -P: every exposed port on a host port of its own is not implemented
    "StorageOpt": unset,
    "UsernsMode": one_of("host"),  # "host" = no remapping, which is all this engine does
    "MaskedPaths": lambda v: v is None,  # [] would unmask /proc: only the default set
    "ReadonlyPaths": lambda v: v is None,
}


HINTS = {
    "PublishAllPorts": "publishing every exposed port (-P) is not supported (publish each: -p PORT or HOST:PORT)",
    "DeviceCgroupRules": "containers get no devices beyond the default set (/dev/null, /dev/zero, ...)",
    "Devices": "containers get no devices beyond the default set (/dev/null, /dev/zero, ...)",
    "MacAddress": "a container's MAC follows from its address (02:42 and the IPv4 address)",
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_unsupported(section: dict[str, Any], prefix: str, honoured: frozenset[str],
                      at_default: dict[str, Accept]) -> None:
    """Refuse, by name, the first field of section this engine would otherwise ignore."""
    for name, value in section.items():
        if name in honoured:
            continue
        accept = at_default.get(name, unset)
        if not accept(value):
            hint = f": {HINTS[name]}" if name in HINTS else ""
            raise BadParameter(f"{prefix}{name}={_shown(value)} is not supported by this engine{hint}")


def check_body(body: dict[str, Any]) -> None:
    check_unsupported(body, "", HONOURED_CONFIG, AT_DEFAULT_CONFIG)


def check_host(host: dict[str, Any]) -> None:
    check_unsupported(host, "HostConfig.", HONOURED_HOST, AT_DEFAULT_HOST)

