"""Docker's POST /containers/create body -> the engine's CreateSpec, validated.

Every field is either read here or, through createfields, accepted only when it is not set:
an option this engine does not implement is refused with its name, never dropped.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..containers import mounts, security, users
from ..containers.model import CreateSpec, Limits, PortBinding, check_port, check_proto
from ..errors import BadParameter
from ..network import hostlines
from ..runtime.cgroups import MAX_SHARES, MIN_SHARES
from ..units import parse_memory
from . import createfields, createopts, netbody, stdiobody, stopbody

HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
GO_TRUE, GO_FALSE = ("1", "t", "T", "true", "True", "TRUE"), ("0", "f", "F", "false", "False", "FALSE")


def _argv(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadParameter(f"{field} must be a list of strings")


def _int(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameter(f"invalid {field}: {value!r} (want an integer)")
    return value


def _ports(bindings: Any) -> list[PortBinding]:
    if not bindings:
        return []
    if not isinstance(bindings, dict):
        raise BadParameter("HostConfig.PortBindings must be an object")
    ports = []
    for key, targets in bindings.items():
        cport, _, proto = str(key).partition("/")
        if not isinstance(targets, list | None) or not all(isinstance(t, dict | None) for t in targets or []):
            raise BadParameter(f"HostConfig.PortBindings[{str(key)[:32]!r}] must be a list of objects")
        for target in targets or []:
            host = (target or {}).get("HostPort") or ""
            host_ip = (target or {}).get("HostIp") or ""
            if not isinstance(host_ip, str):
                raise BadParameter(f"port {key}: HostIp must be a string")
            ephemeral = host in ("", "0")  # the engine picks one at start (containers/hostports.py)
            ports.append(PortBinding(check_port(cport), 0 if ephemeral else check_port(host),
                                     check_proto(proto or "tcp"), host_ip, ephemeral))
    return ports


def _exposed(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise BadParameter("ExposedPorts must be an object")
    return sorted(str(key) for key in value)


def limits_from(host: dict[str, Any]) -> Limits:
    memory = parse_memory(host.get("Memory"))  # an integer, or (extension) "64m"
    nano = _int(host.get("NanoCpus"), "NanoCpus")
    quota, period = _int(host.get("CpuQuota"), "CpuQuota"), _int(host.get("CpuPeriod"), "CpuPeriod")
    ncpu = os.cpu_count() or 1
    if nano and (quota or period):
        raise BadParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano < 0 or (nano and not 10_000_000 <= nano <= ncpu * 1_000_000_000):
        raise BadParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, "
                           f"as there are only {ncpu} CPUs available")
    if quota and quota != -1 and quota < 1000:
        raise BadParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if period and not 1000 <= period <= 1_000_000:
        raise BadParameter("CPU cfs period can not be less than 1ms (i.e. 1000) "
                           "or larger than 1s (i.e. 1000000)")
    pids = host.get("PidsLimit")
    pids = _int(pids, "PidsLimit") if pids is not None else 0
    shares = _int(host.get("CpuShares"), "CpuShares")
    if shares and not MIN_SHARES <= shares <= MAX_SHARES:
        raise BadParameter(f"CpuShares={shares} is out of range: CPU shares go from {MIN_SHARES} to "
                           f"{MAX_SHARES} (0 leaves the default weight)")
    return Limits(memory=memory, cpu_quota=max(quota, 0), cpu_period=period, nano_cpus=nano,
                  pids=max(pids, 0), cpu_shares=shares)


def security_opts(value: Any) -> list[str]:
    """SecurityOpt: only no-new-privileges, which this engine sets for every container anyway.

    no-new-privileges=false is refused rather than ignored: setuid programs would still not
    gain privileges here. seccomp=unconfined is refused too: the profile is what stops a
    container from creating user namespaces and reaching the kernel code behind them.
    """
    opts = _argv(value, "HostConfig.SecurityOpt")
    for opt in opts:
        key, sep, val = opt.partition("=")
        if not sep:
            key, sep, val = opt.partition(":")  # Docker's older spelling
        if key != "no-new-privileges":
            raise BadParameter(f"HostConfig.SecurityOpt {opt[:60]!r} is not supported by this engine "
                               "(only no-new-privileges: its seccomp profile and capabilities always apply)")
        if sep and val in GO_FALSE:
            raise BadParameter("HostConfig.SecurityOpt no-new-privileges=false is not supported: this "
                               "engine always sets no_new_privs, so setuid programs never gain privileges")
        if sep and val not in GO_TRUE:
            raise BadParameter(f"HostConfig.SecurityOpt {opt[:60]!r}: invalid value (want true or false)")
    return opts


def oom_score_adj(value: Any) -> int:
    score = _int(value, "HostConfig.OomScoreAdj")
    if not -1000 <= score <= 1000:
        raise BadParameter(f"Invalid value {score}, range for oom score adj is [-1000, 1000]")
    if score < 0:
        raise BadParameter(f"HostConfig.OomScoreAdj={score} is not supported by this engine: a container "
                           "may not rank below the node's own services for the OOM killer (use 0 to 1000)")
    return score


def _user(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadParameter("User must be a string")
    users.split_spec(value)
    return value


def _hostname(value: Any) -> str:
    name = str(value or "")
    if name and not HOSTNAME_RE.fullmatch(name):
        raise BadParameter(f"invalid hostname format: {name[:64]}")
    return name


def _workdir(value: Any) -> str:
    workdir = str(value or "")
    if workdir and not workdir.startswith("/"):
        raise BadParameter(f"the working directory '{workdir[:64]}' is invalid, it needs to be an "
                           "absolute path")
    return workdir


def spec_from_body(body: Any) -> CreateSpec:
    if not isinstance(body, dict):
        raise BadParameter("the create body must be a JSON object")
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise BadParameter("Image is required")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise BadParameter("HostConfig must be an object")
    createfields.check_body(body)
    createfields.check_host(host)
    if host.get("Privileged"):
        raise BadParameter("HostConfig.Privileged: privileged containers are not supported by this engine")
    mode = host.get("NetworkMode") or "default"
    if createfields.boolean(body.get("NetworkDisabled"), "NetworkDisabled"):
        mode = "none"
    env = _argv(body.get("Env"), "Env")
    if any(not e or e.startswith("=") or "\0" in e for e in env):
        raise BadParameter("Env entries must look like NAME=value or NAME")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise BadParameter("Labels must be an object")
    pid_mode = host.get("PidMode") or ""
    if pid_mode not in ("", "host"):
        raise BadParameter(f"HostConfig.PidMode: pid mode {pid_mode!r} is not supported "
                           "(use host or leave it empty)")
    ports = _ports(host.get("PortBindings"))
    if ports and mode == "none":
        raise BadParameter("published ports need the bridge network")
    cap_add = security.normalize_caps(host.get("CapAdd"), "HostConfig.CapAdd")
    security.check_cap_add(cap_add)
    spec = CreateSpec(
        image=image, image_id="", cmd=_argv(body.get("Cmd"), "Cmd"),
        entrypoint=_argv(body.get("Entrypoint"), "Entrypoint"), env=env,
        workdir=_workdir(body.get("WorkingDir")), hostname=_hostname(body.get("Hostname")),
        labels={str(k): str(v) for k, v in labels.items()},
        exposed=_exposed(body.get("ExposedPorts")), ports=ports,
        limits=limits_from(host), network_mode="none" if mode == "none" else "bridge",
        auto_remove=createfields.boolean(host.get("AutoRemove"), "HostConfig.AutoRemove"), pid_mode=pid_mode,
        user=_user(body.get("User")), cap_add=cap_add,
        cap_drop=security.normalize_caps(host.get("CapDrop"), "HostConfig.CapDrop"),
        readonly_rootfs=createfields.boolean(host.get("ReadonlyRootfs"), "HostConfig.ReadonlyRootfs"),
        security_opt=security_opts(host.get("SecurityOpt")),
        oom_score_adj=oom_score_adj(host.get("OomScoreAdj")),
    )
    # Areas with modules of their own read their fields here, one call each.
    stopbody.read(spec, body, host)
    mounts.read_into(spec, body, host)
    netbody.apply(spec, body, host)
    hostlines.read_into(spec, host)
    stdiobody.read_into(spec, body, host)
    createopts.read(spec, body, host)
    return spec
