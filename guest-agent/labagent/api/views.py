"""Engine records rendered in the JSON shapes of Docker Engine API v1.43."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import API_VERSION, ENGINE_VERSION, MIN_API_VERSION
from ..containers import health
from ..containers.model import Container, MountSpec
from ..fsutil import parse_rfc3339
from ..images.store import Image
from ..network import hostlines
from ..nodefacts import NodeFacts


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration, for "Up 5 seconds" and "Exited (0) 2 minutes ago"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    return f"{hours // 24} days"


def status_text(c: Container) -> str:
    now = time.time()
    if c.running:
        up = f"Up {human_duration(now - parse_rfc3339(c.state.started_at))}"
        if c.state.paused:
            return f"{up} (Paused)"
        shown = {"starting": "health: starting"}.get(c.state.health, c.state.health)
        return f"{up} ({shown})" if shown else up
    if c.state.status == "restarting":
        ago = human_duration(now - parse_rfc3339(c.state.finished_at))
        return f"Restarting ({c.state.exit_code}) {ago} ago"
    if c.state.status == "exited":
        ago = human_duration(now - parse_rfc3339(c.state.finished_at))
        return f"Exited ({c.state.exit_code}) {ago} ago"
    return "Created"


def _port_map(c: Container) -> dict[str, Any]:
    ports: dict[str, Any] = {key: None for key in c.spec.exposed}
    for p in c.spec.ports:
        ports.setdefault(p.key, None)
        if c.running:
            ports[p.key] = (ports[p.key] or []) + [{"HostIp": p.host_ip or "0.0.0.0",
                                                    "HostPort": str(p.host_port)}]
    return ports


def _endpoint(c: Container) -> dict[str, Any]:
    n = c.network
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "labbr0",
            "EndpointID": c.id if n.ip else "", "Gateway": n.gateway, "IPAddress": n.ip,
            "IPPrefixLen": n.prefix, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": n.mac, "DriverOpts": None}


def command(c: Container, image_config: dict[str, Any] | None = None) -> str:
    cfg = (image_config or {}).get("config") or {}
    argv = c.spec.argv or [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
    return " ".join(argv)


def shown_status(c: Container) -> str:
    """State.Status as Docker names it: a frozen container is "paused" (and still Running)."""
    return "paused" if c.running and c.state.paused else c.state.status


def _networks(c: Container, user: dict[str, Any] | None) -> dict[str, Any]:
    """NetworkSettings.Networks: the default bridge (or none) entry, then the user networks'."""
    base = {c.spec.network_mode: _endpoint(c)} if c.spec.network_mode in ("bridge", "none") else {}
    return {**base, **(user or {})}


def container_summary(c: Container, networks: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of GET /containers/json; networks: the user networks' entries (api/networks.py)."""
    return {
        "Id": c.id, "Names": [f"/{c.name}"], "Image": c.spec.image, "ImageID": c.spec.image_id,
        "Command": command(c), "Created": int(parse_rfc3339(c.created)),
        "Ports": [{"IP": p.host_ip or "0.0.0.0", "PrivatePort": p.container_port,
                   "PublicPort": p.host_port, "Type": p.proto} for p in c.spec.ports if c.running],
        "Labels": c.spec.labels, "State": shown_status(c), "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.spec.network_mode},
        "NetworkSettings": {"Networks": _networks(c, networks)},
        "Mounts": mount_views(c),
    }


def health_state(c: Container) -> dict[str, Any] | None:
    """State.Health, present once the container has a healthcheck and has run with it."""
    s = c.state
    if not s.health:
        return None
    return {"Status": s.health, "FailingStreak": s.failing_streak, "Log": list(s.health_log)}


def _mount_view(m: MountSpec, data_dir: Callable[[str], Path] | None) -> dict[str, Any]:
    view: dict[str, Any] = {"Type": m.type}
    if m.type == "volume":
        source = str(data_dir(m.source)) if data_dir else ""
        view.update(Name=m.source, Source=source, Driver="local")
    else:
        view["Source"] = m.source
    propagation = next((o for o in m.options if o in ("private", "rprivate", "shared", "rshared",
                                                      "slave", "rslave")), "rprivate")
    mode = "ro" if m.readonly else ""
    if m.type == "volume" and "nocopy" in m.options:
        mode = ",".join(x for x in (mode, "nocopy") if x)
    view.update(Destination=m.target, Mode=mode if m.origin in ("binds", "volumes_from") else "",
                RW=not m.readonly, Propagation=propagation if m.type == "bind" else "")
    return view


def mount_views(c: Container, data_dir: Callable[[str], Path] | None = None) -> list[dict[str, Any]]:
    """Inspect's Mounts: every bind, volume and tmpfs, in Docker's MountPoint shape."""
    return [_mount_view(m, data_dir) for m in c.spec.mounts]


def host_mounts(c: Container) -> dict[str, Any]:
    """HostConfig.Binds, Mounts, Tmpfs and VolumesFrom, as the create body gave them."""
    binds, mounts, tmpfs = [], [], {}
    for m in c.spec.mounts:
        if m.origin == "binds" and m.anonymous:
            binds.append(":".join([m.target, *(["ro"] if m.readonly else [])]))
        elif m.origin == "binds":
            modes = [*(["ro"] if m.readonly else []),
                     *(o for o in m.options if not o.startswith("label:"))]
            binds.append(":".join([m.source, m.target, *([",".join(modes)] if modes else [])]))
        elif m.origin == "tmpfs":
            tmpfs[m.target] = ",".join(m.options)
        elif m.origin == "mounts":
            mount: dict[str, Any] = {"Type": m.type, "Source": m.source, "Target": m.target}
            if m.readonly:
                mount["ReadOnly"] = True
            if m.type == "volume":
                labels = dict(o[len("label:"):].partition("=")[::2] for o in m.options if o.startswith("label:"))
                mount["VolumeOptions"] = {"NoCopy": "nocopy" in m.options, "Labels": labels or None}
            elif m.type == "bind" and m.options:
                mount["BindOptions"] = {"Propagation": m.options[0]}
            elif m.type == "tmpfs":
                opts = dict(o.partition("=")[::2] for o in m.options)
                mount["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", int(opts.get("size") or 0)),
                                                           ("Mode", int(opts.get("mode") or "0", 8))) if v}
            mounts.append(mount)
    return {"Binds": binds or None, "Mounts": mounts or None, "Tmpfs": tmpfs or None,
            "VolumesFrom": c.spec.volumes_from or None}


def container_inspect(c: Container, bundle: str, lowers: list[str], image_config: dict[str, Any],
                      data_dir: Callable[[str], Path] | None = None,
                      networks: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET /containers/{id}/json."""
    s, spec, lim = c.state, c.spec, c.spec.limits
    cfg = image_config.get("config") or {}
    argv = spec.argv or [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
    return {
        "Id": c.id, "Created": c.created, "Path": argv[0] if argv else "", "Args": argv[1:],
        "State": {"Status": shown_status(c), "Running": c.running or s.status == "restarting",
                  "Paused": c.running and s.paused, "Restarting": s.status == "restarting",
                  "OOMKilled": s.oom_killed, "Dead": s.status == "dead", "Pid": s.pid,
                  "ExitCode": s.exit_code, "Error": s.error, "StartedAt": s.started_at,
                  "FinishedAt": s.finished_at, **({"Health": health_state(c)} if s.health else {})},
        "Image": spec.image_id, "ResolvConfPath": f"{bundle}/resolv.conf",
        "HostnamePath": f"{bundle}/hostname", "HostsPath": f"{bundle}/hosts",
        "LogPath": f"{bundle}/container-json.log", "Name": f"/{c.name}", "RestartCount": s.restart_count,
        "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": {
            "NetworkMode": spec.network_mode, "AutoRemove": spec.auto_remove, "PidMode": spec.pid_mode,
            "ExtraHosts": spec.extra_hosts or None, "Links": hostlines.shown_links(spec, c.name),
            "Dns": spec.dns, "DnsSearch": spec.dns_search, "DnsOptions": spec.dns_options,
            "RestartPolicy": {"Name": spec.restart.name, "MaximumRetryCount": spec.restart.max_retries},
            "PortBindings": {p.key: [{"HostIp": p.host_ip, "HostPort": "" if p.ephemeral else str(p.host_port)}]
                             for p in spec.ports},
            "Memory": lim.memory, "MemorySwap": lim.swap or lim.memory, "NanoCpus": lim.nano_cpus,
            "MemoryReservation": lim.reservation, "CpusetCpus": lim.cpuset_cpus, "CpusetMems": lim.cpuset_mems,
            "MemorySwappiness": None, "KernelMemory": 0, "Init": None,
            "UTSMode": spec.options.get("UTSMode", ""), "Ulimits": spec.options.get("Ulimits") or None,
            "ShmSize": spec.options.get("ShmSize") or 64 << 20, "Sysctls": spec.options.get("Sysctls") or None,
            "Isolation": spec.options.get("Isolation", ""), "GroupAdd": spec.options.get("GroupAdd") or None,
            "CpuQuota": lim.cpu_quota, "CpuPeriod": lim.cpu_period, "PidsLimit": lim.pids or None,
            "CpuShares": lim.cpu_shares,
            "Privileged": False, "ReadonlyRootfs": spec.readonly_rootfs, "SecurityOpt": spec.security_opt or None,
            "CapAdd": spec.cap_add or None, "CapDrop": spec.cap_drop or None, "OomScoreAdj": spec.oom_score_adj,
            "CgroupnsMode": "private", "ConsoleSize": spec.console_size or [0, 0],
            "IpcMode": "private", "Runtime": spec.options.get("Runtime") or "crun",
            "LogConfig": spec.options.get("LogConfig") or {"Type": "json-file", "Config": {}},
            **host_mounts(c),
        },
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": ":".join(reversed(lowers)), "UpperDir": f"{bundle}/upper",
            "WorkDir": f"{bundle}/work", "MergedDir": f"{bundle}/rootfs"}},
        "Mounts": mount_views(c, data_dir),
        "Config": {
            "Hostname": spec.hostname or c.name, "Domainname": "", "User": spec.user, "AttachStdin": spec.attach_stdin,
            "AttachStdout": True, "AttachStderr": True, "Tty": spec.tty, "OpenStdin": spec.open_stdin,
            "StdinOnce": spec.stdin_once, "Env": spec.env, "Cmd": spec.cmd or cfg.get("Cmd"),
            "Image": spec.image, "WorkingDir": spec.workdir,
            "Volumes": {m.target: {} for m in spec.mounts if m.origin == "volumes"} or None,
            "Entrypoint": spec.entrypoint or cfg.get("Entrypoint"), "Labels": spec.labels,
            "ExposedPorts": {key: {} for key in {*spec.exposed, *(p.key for p in spec.ports)}},
            **_stop_and_health(c, image_config),
        },
        "NetworkSettings": {
            "Bridge": "labbr0", "SandboxID": c.id if c.network.ip else "", "SandboxKey": "",
            "Ports": _port_map(c), "IPAddress": c.network.ip, "IPPrefixLen": c.network.prefix,
            "Gateway": c.network.gateway, "MacAddress": c.network.mac,
            "Networks": {k: v for k, v in _networks(c, networks).items() if k != "none"},
        },
    }


def _stop_and_health(c: Container, image_config: dict[str, Any]) -> dict[str, Any]:
    """Config's StopSignal, StopTimeout (only when given, as dockerd shows them) and Healthcheck."""
    shown: dict[str, Any] = {}
    if c.spec.stop_signal:
        shown["StopSignal"] = c.spec.stop_signal
    if c.spec.stop_timeout is not None:
        shown["StopTimeout"] = c.spec.stop_timeout
    check = health.to_api(health.effective(c.spec.healthcheck, health.from_image(image_config)))
    if check is not None:
        shown["Healthcheck"] = check
    return shown


def image_summary(image: Image, containers: int, tags: list[str] | None = None) -> dict[str, Any]:
    """One entry of GET /images/json; tags, when given, are the ones a reference filter matched."""
    shown = image.tags if tags is None else tags
    return {
        "Id": image.id, "ParentId": image.parent, "RepoTags": shown or ["<none>:<none>"],
        "RepoDigests": [] if shown else ["<none>@<none>"], "Created": int(parse_rfc3339(image.created)),
        "Size": image.size, "SharedSize": -1, "VirtualSize": image.size,
        "Labels": image.labels or None, "Containers": containers,
    }


CONTAINER_CONFIG: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
    "Labels": None,
}


def _container_config(value: object) -> dict[str, Any]:
    """An image's (container) config with every field Docker shows, defaults where it says none."""
    return {**CONTAINER_CONFIG, **(value if isinstance(value, dict) else {})}


def image_inspect(image: Image, layer_dirs: list[str], last_tag_time: str) -> dict[str, Any]:
    """GET /images/{name}/json, in the shape docker-py and docker-compose read."""
    cfg = image.config
    data: dict[str, str] = {}
    if layer_dirs:
        data["UpperDir"] = layer_dirs[-1]
    if len(layer_dirs) > 1:
        data["LowerDir"] = ":".join(reversed(layer_dirs[:-1]))
    return {
        "Id": image.id, "RepoTags": image.tags, "RepoDigests": [], "Parent": image.parent,
        "Comment": str(cfg.get("comment") or ""), "Created": image.created,
        "Container": str(cfg.get("container") or ""), "ContainerConfig": _container_config(cfg.get("container_config")),
        "DockerVersion": str(cfg.get("docker_version") or ""), "Author": str(cfg.get("author") or ""),
        "Config": _container_config(cfg.get("config")), "Architecture": str(cfg.get("architecture") or ""),
        **({"Variant": cfg["variant"]} if isinstance(cfg.get("variant"), str) else {}),
        "Os": str(cfg.get("os") or "linux"), "Size": image.size, "VirtualSize": image.size,
        "GraphDriver": {"Name": "overlay2", "Data": data},
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"LastTagTime": last_tag_time},
    }


def version() -> dict[str, Any]:
    uname = os.uname()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine)
    return {
        "Platform": {"Name": "lab-agent"},
        "Components": [{"Name": "Engine", "Version": ENGINE_VERSION,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                    "Os": "linux", "Arch": arch, "KernelVersion": uname.release,
                                    "GitCommit": "lab", "GoVersion": f"python{platform.python_version()}",
                                    "BuildTime": "", "Experimental": "false"}}],
        "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "lab", "GoVersion": f"python{platform.python_version()}", "Os": "linux",
        "Arch": arch, "KernelVersion": uname.release, "BuildTime": "",
    }


def info(containers: list[Container], images: int, root: str, node: NodeFacts, engine_id: str,
         runtime_path: str, runtime_commit: str, listeners: int) -> dict[str, Any]:
    """GET /info (SystemInfo): the engine's counts and the node's own figures (nodefacts)."""
    running = sum(c.running for c in containers)
    paused = sum(c.running and c.state.paused for c in containers)
    cg = node.cgroups
    return {
        "ID": engine_id, "Name": node.hostname, "Containers": len(containers),
        "ContainersRunning": running - paused, "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running, "Images": images,
        "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", node.backing_fs]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": cg.memory, "SwapLimit": cg.swap, "CpuCfsPeriod": cg.cpu, "CpuCfsQuota": cg.cpu,
        "CPUShares": cg.cpu, "CPUSet": False, "PidsLimit": cg.pids, "OomKillDisable": False,
        "IPv4Forwarding": node.ipv4_forwarding, "BridgeNfIptables": node.bridge_nf_iptables,
        "BridgeNfIp6tables": node.bridge_nf_ip6tables, "Debug": False, "NFd": node.open_fds,
        "NGoroutines": threading.active_count(), "NEventsListener": listeners,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2", "KernelVersion": node.kernel,
        "OperatingSystem": node.os_name, "OSVersion": node.os_version, "OSType": "linux",
        "Architecture": node.machine, "NCPU": node.ncpu, "MemTotal": node.mem_total,
        "IndexServerAddress": "", "GenericResources": None,
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": [], "InsecureRegistryCIDRs": [],
                           "IndexConfigs": {}, "Mirrors": []},
        "DockerRootDir": root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": ENGINE_VERSION,
        "Runtimes": {"crun": {"path": runtime_path}}, "DefaultRuntime": "crun",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": runtime_commit, "Expected": runtime_commit},
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        "Warnings": info_warnings(node),
    }


def info_warnings(node: NodeFacts) -> list[str]:
    """What dockerd warns of when the kernel lacks a limit its containers would be given."""
    cg, warnings = node.cgroups, []
    for supported, what in ((cg.memory, "memory limit"), (cg.swap, "swap limit"),
                            (cg.cpu, "cpu cfs quota"), (cg.cpu, "cpu cfs period"), (cg.cpu, "cpu shares"),
                            (cg.pids, "pids limit")):
        if not supported:
            warnings.append(f"WARNING: No {what} support")
    if not node.ipv4_forwarding:
        warnings.append("WARNING: IPv4 forwarding is disabled")
    return warnings
