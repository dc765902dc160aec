"""Docker's POST /containers/create body -> the engine's ContainerSpec, validated."""

from __future__ import annotations

import os
from typing import Any

from ..errors import BadParameter
from ..model import ContainerSpec, Limits, PortBinding, check_port, check_proto
from ..units import parse_memory


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
        for target in targets or []:
            host = (target or {}).get("HostPort") or ""
            if not host:
                raise BadParameter(f"port {key}: a host port is required "
                                   "(random host ports are not supported)")
            ports.append(PortBinding(check_port(cport), check_port(host), check_proto(proto or "tcp"),
                                     (target or {}).get("HostIp") or ""))
    return ports


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
    return Limits(memory=memory, cpu_quota=max(quota, 0), cpu_period=period, nano_cpus=nano,
                  pids=max(pids, 0))


def spec_from_body(body: Any) -> ContainerSpec:
    if not isinstance(body, dict):
        raise BadParameter("the create body must be a JSON object")
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise BadParameter("Image is required")
    if body.get("Tty"):
        raise BadParameter("TTY containers are not supported by this engine (drop -t)")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise BadParameter("HostConfig must be an object")
    if host.get("Privileged"):
        raise BadParameter("privileged containers are not supported by this engine")
    if host.get("Binds") or host.get("Mounts"):
        raise BadParameter("bind mounts and volumes are not supported by this engine")
    mode = host.get("NetworkMode") or "default"
    if mode not in ("default", "bridge", "none"):
        raise BadParameter(f"network mode {mode!r} is not supported (use bridge or none)")
    env = _argv(body.get("Env"), "Env")
    if any("=" not in e or e.startswith("=") for e in env):
        raise BadParameter("Env entries must look like NAME=value")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise BadParameter("Labels must be an object")
    pid_mode = host.get("PidMode") or ""
    if pid_mode not in ("", "host"):
        raise BadParameter(f"pid mode {pid_mode!r} is not supported (use host or leave it empty)")
    ports = _ports(host.get("PortBindings"))
    if ports and mode == "none":
        raise BadParameter("published ports need the bridge network")
    return ContainerSpec(
        image=image, image_id="", cmd=_argv(body.get("Cmd"), "Cmd"),
        entrypoint=_argv(body.get("Entrypoint"), "Entrypoint"), env=env,
        workdir=str(body.get("WorkingDir") or ""), hostname=str(body.get("Hostname") or ""),
        labels={str(k): str(v) for k, v in labels.items()},
        exposed=sorted((body.get("ExposedPorts") or {}).keys()), ports=ports,
        limits=limits_from(host), network_mode="none" if mode == "none" else "bridge",
        auto_remove=bool(host.get("AutoRemove")), pid_mode=pid_mode,
    )
