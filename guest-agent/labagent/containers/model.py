"""The engine's records: what a container is, as stored on disk and shown by the API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from ..errors import BadParameter

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
STATUSES = ("created", "running", "exited", "dead")


@dataclass(frozen=True)
class PortBinding:
    """One `-p HOST:CTR[/proto]` publication."""

    container_port: int
    host_port: int
    proto: str = "tcp"
    host_ip: str = ""
    ephemeral: bool = False  # HostPort "" asked: host_port is the engine's pick (hostports.py)

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


@dataclass
class Limits:
    """cgroup v2 limits, in the units the OCI spec wants."""

    memory: int = 0  # bytes, 0 = unlimited
    cpu_quota: int = 0  # microseconds per period, 0 = unlimited
    cpu_period: int = 0
    nano_cpus: int = 0
    pids: int = 0  # 0 = unlimited
    cpu_shares: int = 0  # HostConfig.CpuShares (2..262144), 0 = unset: cpu.weight stays 100
    swap: int = 0  # HostConfig.MemorySwap (memory + swap), 0 = as memory (no swap), -1 = unlimited
    reservation: int = 0  # HostConfig.MemoryReservation: memory.low, 0 = none
    cpuset_cpus: str = ""  # HostConfig.CpusetCpus: cpuset.cpus, "" = all
    cpuset_mems: str = ""


@dataclass
class RestartPolicy:
    """Docker's HostConfig.RestartPolicy: no | on-failure | always | unless-stopped."""

    name: str = "no"
    max_retries: int = 0  # on-failure only; 0 = no limit


@dataclass
class Healthcheck:
    """Config.Healthcheck: ["CMD", ...] or ["CMD-SHELL", "..."]; durations in nanoseconds."""

    test: list[str] = field(default_factory=list)
    interval: int = 0  # 0 = Docker's default (30 s)
    timeout: int = 0  # 0 = 30 s
    start_period: int = 0
    retries: int = 0  # 0 = 3


@dataclass
class MountSpec:
    """One mount of Binds, Mounts, Tmpfs or Volumes, normalised (a volume's name is given at create)."""

    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # bind: a node path; volume: the volume's name; tmpfs: ""
    readonly: bool = False
    # tmpfs: size=, mode=...; bind: propagation; volume: nocopy, label:K=V (for a volume made at create)
    options: list[str] = field(default_factory=list)
    anonymous: bool = False  # a volume created for this container alone (removed with rm -v)
    # where it came from, for inspect: binds | mounts | tmpfs | volumes | image | volumes_from
    origin: str = ""


@dataclass
class EndpointSpec:
    """A user-defined network a container joins at create (NetworkingConfig.EndpointsConfig)."""

    aliases: list[str] = field(default_factory=list)
    ipv4: str = ""  # IPAMConfig.IPv4Address, "" = allocated


@dataclass
class CreateSpec:
    """What a create body asked for (api/createbody.py), validated; never changes afterwards.

    Any client's body ends here, the host's for a lab file's containers (contract.ContainerSpec,
    sent as a create body) as much as the docker CLI's.
    """

    image: str
    image_id: str
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed: list[str] = field(default_factory=list)
    ports: list[PortBinding] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    network_mode: str = "bridge"
    auto_remove: bool = False
    # "host" shares the node's pid namespace (docker run --pid host): lab verify's
    # own tests use it to break isolation on purpose.
    pid_mode: str = ""
    # Options that only take privilege away. user is Docker's User as given ("" = the image's,
    # else root), resolved at each start against the container's own /etc/passwd (users.py).
    user: str = ""
    cap_add: list[str] = field(default_factory=list)  # normalised names, within the default set
    cap_drop: list[str] = field(default_factory=list)
    readonly_rootfs: bool = False
    security_opt: list[str] = field(default_factory=list)  # as given, for inspect
    oom_score_adj: int = 0  # 0 to 1000: never below the node's own services
    # restart policy, health and stop behaviour
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    healthcheck: Healthcheck | None = None
    stop_signal: str = ""  # "" = SIGTERM
    stop_timeout: int | None = None  # None = 10 s

    # storage: binds, volumes, tmpfs (volumes_from already expanded into mounts at create)
    mounts: list[MountSpec] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)  # as given, for inspect

    # user-defined networks joined at create (network_mode names the first one)
    networks: dict[str, EndpointSpec] = field(default_factory=dict)
    # /etc/hosts lines of its own (network/hostlines.py): "name:address" and "container:alias"
    extra_hosts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    # resolv.conf lines of its own (network/dnsconf.py), each replacing the node's of its kind
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)

    # a terminal and stdin (docker run -t, -i): api/stdiobody.py, runtime/stdiorelay.py
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    console_size: list[int] = field(default_factory=list)  # [height, width] of the first pty

    # HostConfig options api/createopts.py reads (LogConfig, Isolation, Runtime, UTSMode, Ulimits,
    # ShmSize, Sysctls), normalised but in the create body's shape, for inspect and config.json
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return [*self.entrypoint, *self.cmd]


@dataclass
class ContainerState:
    """The lifecycle as Docker reports it in `State`."""

    status: str = "created"
    pid: int = 0
    shim_pid: int = 0
    shim_start: int = 0  # /proc/PID/stat start time, so a recycled pid is not mistaken for ours
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    exits: int = 0  # how many times it has exited, for wait?condition=next-exit
    paused: bool = False  # frozen through the cgroup freezer (status stays "running")
    restart_count: int = 0
    restarting: bool = False
    stopped_by_user: bool = False  # docker stop/kill: unless-stopped and always do not restart it
    health: str = ""  # "" (no healthcheck) | starting | healthy | unhealthy
    failing_streak: int = 0
    health_log: list[dict[str, Any]] = field(default_factory=list)  # the last 5 probes, Docker's shape


@dataclass
class NetworkState:
    ip: str = ""
    mac: str = ""
    gateway: str = ""
    prefix: int = 0
    veth: str = ""  # host-side veth when it came from the netns pool ("" = lv<id>)


@dataclass
class Container:
    id: str
    name: str
    created: str
    spec: CreateSpec
    state: ContainerState = field(default_factory=ContainerState)
    network: NetworkState = field(default_factory=NetworkState)

    @property
    def running(self) -> bool:
        return self.state.status == "running"

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = plain(self)
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Container:
        spec = dict(data["spec"])
        spec["ports"] = [PortBinding(**p) for p in spec.get("ports", [])]
        spec["limits"] = Limits(**spec.get("limits", {}))
        spec["restart"] = RestartPolicy(**spec.get("restart", {}))
        if spec.get("healthcheck") is not None:
            spec["healthcheck"] = Healthcheck(**spec["healthcheck"])
        spec["mounts"] = [MountSpec(**m) for m in spec.get("mounts", [])]
        spec["networks"] = {k: EndpointSpec(**v) for k, v in spec.get("networks", {}).items()}
        return cls(
            id=data["id"],
            name=data["name"],
            created=data["created"],
            spec=CreateSpec(**spec),
            state=ContainerState(**data.get("state", {})),
            network=NetworkState(**data.get("network", {})),
        )


def plain(value: Any) -> Any:
    """dataclasses.asdict without its deep copy of every leaf: a record is saved at each
    create, start and exit, and asdict took about 4 ms of that under TCG."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def check_name(name: str) -> str:
    """Docker's container-name rule; a leading slash is accepted and dropped."""
    name = name.lstrip("/")
    if not NAME_RE.match(name):
        raise BadParameter(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return name


def parse_publish(text: str) -> PortBinding:
    """`[IP:]HOST:CTR[/proto]` as `docker run -p` takes it (CLI side)."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    parts = spec.rsplit(":", 2)
    if len(parts) == 2:
        host_ip, (host, ctr) = "", parts
    elif len(parts) == 3:
        host_ip, host, ctr = parts
    else:
        raise BadParameter(f"invalid publish spec {text!r}: want HOST:CONTAINER[/tcp|udp]")
    return PortBinding(check_port(ctr), check_port(host), check_proto(proto), host_ip)


def check_port(value: str | int) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise BadParameter(f"invalid port {value!r}") from None
    if not 0 < port < 65536:
        raise BadParameter(f"invalid port {value!r}: must be 1-65535")
    return port


def check_proto(proto: str) -> str:
    if proto not in ("tcp", "udp"):
        raise BadParameter(f"invalid protocol {proto!r}: want tcp or udp")
    return proto
