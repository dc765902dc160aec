"""User-defined bridge networks: their records, and the addresses and subnets they are given.

Each network is one JSON file under ROOT/networks, holding its IPAM and its endpoints (one per
container joined, running or not). Subnets come from a pool that cannot meet the default
bridge, QEMU's management network or any route the node already has (its lab links); a
subnet the client names is held to the same rule. Everything here is pure bookkeeping: the
bridges, veths and rules are made by network/userbridge.py.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import secrets
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..containers.model import plain
from ..errors import BadParameter, Conflict, EngineError, NotFound
from ..fsutil import read_json, rfc3339, write_json
from .addressing import SUBNET as DEFAULT_SUBNET

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
MAX_NAME = 128
MAX_NETWORKS = 128  # each is a Linux bridge and a few nftables rules on a small VM
MAX_LABELS = 64
MAX_ALIASES = 32
ALIAS_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,62})")  # it lands in /etc/hosts: no spaces, no '#'
MIN_PREFIX, MAX_PREFIX = 16, 29  # at most 65534 addresses; at least gateway + 5
MANAGEMENT = ipaddress.IPv4Network("10.0.2.0/24")  # QEMU user-mode networking
RESERVED = (DEFAULT_SUBNET, MANAGEMENT, ipaddress.IPv4Network("127.0.0.0/8"),
            ipaddress.IPv4Network("169.254.0.0/16"), ipaddress.IPv4Network("224.0.0.0/3"))
POOL = [ipaddress.IPv4Network(f"172.{second}.0.0/16") for second in range(18, 31)]
POOL_PREFIX = 24
BUILTIN = ("bridge", "host", "none")


def builtin_id(name: str) -> str:
    """Stable ids for the predefined networks (dockerd's are random per install)."""
    return hashlib.sha256(f"lab-network-{name}".encode()).hexdigest()


@dataclass
class Endpoint:
    """One container on one network: asked for at create or connect, wired while it runs."""

    aliases: list[str] = field(default_factory=list)
    ipv4_config: str = ""  # EndpointConfig.IPAMConfig.IPv4Address, "" = allocated
    ip: str = ""  # "" while the container is not running
    mac: str = ""
    ifname: str = ""  # eth0, eth1, ... inside the container
    endpoint_id: str = ""


@dataclass
class UserNetwork:
    id: str
    name: str
    created: str
    subnet: str
    gateway: str
    ip_range: str = ""
    aux: dict[str, str] = field(default_factory=dict)
    user_subnet: bool = False  # the client named it: fixed container addresses are allowed
    internal: bool = False
    attachable: bool = False
    masquerade: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] | None = None
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # container id -> endpoint

    @property
    def bridge(self) -> str:
        """Its Linux bridge: fits IFNAMSIZ and cannot be any other link's name."""
        return f"labn{self.id[:10]}"

    @property
    def prefix(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = plain(self)
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserNetwork:
        data = dict(data)
        data["endpoints"] = {cid: Endpoint(**e) for cid, e in data.get("endpoints", {}).items()}
        return cls(**data)


def check_name(name: Any) -> str:
    """Docker's rule for container and volume names, applied to networks too; bounded."""
    if not isinstance(name, str) or not name:
        raise BadParameter("network name is required")
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        raise BadParameter(f"Invalid network name ({name[:MAX_NAME]}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                           f"are allowed, at most {MAX_NAME} characters")
    return name


def check_aliases(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise BadParameter(f"{where}.Aliases must be a list of strings")
    if len(value) > MAX_ALIASES:
        raise BadParameter(f"{where}.Aliases: at most {MAX_ALIASES} aliases")
    for alias in value:
        if not ALIAS_RE.fullmatch(alias):
            raise BadParameter(f"{where}.Aliases: invalid alias {alias[:64]!r} "
                               "(letters, digits, '_', '.', '-', at most 63)")
    return list(dict.fromkeys(value))


def parse_proc_routes(text: str) -> list[ipaddress.IPv4Network]:
    """The node's routed subnets from /proc/net/route (its links among them), default route excluded."""
    nets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
            mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
            net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except (ValueError, struct.error, OSError):
            continue
        if net.prefixlen:
            nets.append(net)
    return nets


def allocate_subnet(taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first /24 of the pool that overlaps nothing taken."""
    busy = [*RESERVED, *taken]
    for block in POOL:
        if any(block.subnet_of(t) for t in busy):
            continue
        for candidate in block.subnets(new_prefix=POOL_PREFIX):
            if not any(candidate.overlaps(t) for t in busy):
                return candidate
    raise EngineError("could not find an available, non-overlapping IPv4 address pool among the "
                      "defaults to assign to the network", 403)


def _ip(value: Any, where: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None:
        raise BadParameter(f"{where}: invalid address {str(value)[:64]!r}")
    if address.version != 4:
        raise BadParameter(f"{where}: IPv6 is not supported by this engine")
    return ipaddress.IPv4Address(address)


def _net(value: Any, where: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=False) if isinstance(value, str) else None
    except ValueError:
        net = None
    if net is None:
        raise BadParameter(f"{where}: invalid CIDR address {str(value)[:64]!r}")
    if net.version != 4:
        raise BadParameter(f"{where}: IPv6 is not supported by this engine")
    return ipaddress.IPv4Network(net)


@dataclass
class Ipam:
    subnet: ipaddress.IPv4Network | None = None  # None: allocate one from the pool
    gateway: str = ""
    ip_range: str = ""
    aux: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] | None = None


def parse_ipam(value: Any) -> Ipam:
    """IPAM {Driver, Config: [{Subnet, Gateway, IPRange, AuxiliaryAddresses}], Options}: one IPv4 pool."""
    if value is None or value == {}:
        return Ipam()
    if not isinstance(value, dict):
        raise BadParameter("IPAM must be an object")
    unknown = set(value) - {"Driver", "Config", "Options"}
    if unknown:
        raise BadParameter(f"IPAM.{sorted(unknown)[0][:32]} is not supported by this engine")
    if value.get("Driver") not in (None, "", "default"):
        raise BadParameter(f"IPAM.Driver {str(value['Driver'])[:32]!r} is not supported (only default)")
    options = value.get("Options")
    if options not in (None, {}):
        raise BadParameter("IPAM.Options are not supported by this engine")
    configs = value.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise BadParameter("IPAM.Config must be a list of objects")
    if len(configs) > 1:
        raise BadParameter("IPAM.Config: this engine takes one IPv4 pool per network")
    ipam = Ipam(options=options)
    for config in configs:
        unknown = set(config) - {"Subnet", "Gateway", "IPRange", "AuxiliaryAddresses"}
        if unknown:
            raise BadParameter(f"IPAM.Config.{sorted(unknown)[0][:32]} is not supported by this engine")
        if not config.get("Subnet"):
            if any(config.get(k) for k in ("Gateway", "IPRange", "AuxiliaryAddresses")):
                raise BadParameter("IPAM.Config: a Gateway, IPRange or AuxiliaryAddresses needs a Subnet")
            continue
        subnet = _net(config["Subnet"], "IPAM.Config.Subnet")
        if not MIN_PREFIX <= subnet.prefixlen <= MAX_PREFIX:
            raise BadParameter(f"IPAM.Config.Subnet {subnet}: the prefix must be /{MIN_PREFIX} to /{MAX_PREFIX}")
        ipam.subnet = subnet
        hosts = (subnet.network_address, subnet.broadcast_address)
        if config.get("Gateway"):
            gateway = _ip(config["Gateway"], "IPAM.Config.Gateway")
            if gateway not in subnet or gateway in hosts:
                raise BadParameter(f"IPAM.Config.Gateway {gateway} is not a host address of {subnet}")
            ipam.gateway = str(gateway)
        if config.get("IPRange"):
            ip_range = _net(config["IPRange"], "IPAM.Config.IPRange")
            if not ip_range.subnet_of(subnet):
                raise BadParameter(f"IPAM.Config.IPRange {ip_range} is not inside {subnet}")
            ipam.ip_range = str(ip_range)
        aux = config.get("AuxiliaryAddresses") or {}
        if not isinstance(aux, dict) or len(aux) > MAX_ALIASES:
            raise BadParameter(f"IPAM.Config.AuxiliaryAddresses must be an object of at most {MAX_ALIASES}")
        for key, addr in aux.items():
            if _ip(addr, f"IPAM.Config.AuxiliaryAddresses.{key[:32]}") not in subnet:
                raise BadParameter(f"IPAM.Config.AuxiliaryAddresses.{key[:32]}: {addr} is not in {subnet}")
            ipam.aux[str(key)] = str(addr)
    return ipam


def allocate_ip(net: UserNetwork, requested: str = "") -> str:
    """A fixed address (checked) or the lowest free one of the range, past the gateway and aux."""
    subnet = ipaddress.IPv4Network(net.subnet)
    used = {e.ip for e in net.endpoints.values() if e.ip} | {net.gateway, *net.aux.values()}
    if requested:
        address = _ip(requested, "IPAMConfig.IPv4Address")
        if not net.user_subnet:
            raise BadParameter("user specified IP address is supported only when connecting to networks "
                               "with user configured subnets")
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            raise BadParameter(f"invalid address {address}: not a host address of {subnet}")
        if str(address) in used:
            raise Conflict(f"Address already in use: {address} on network {net.name}")
        return str(address)
    pool = ipaddress.IPv4Network(net.ip_range) if net.ip_range else subnet
    for address in pool.hosts() if pool.prefixlen < 31 else pool:
        if str(address) not in used and address not in (subnet.network_address, subnet.broadcast_address):
            return str(address)
    raise EngineError(f"no available IPv4 addresses on network {net.name}: {pool} is full", 403)


class NetworkStore:
    """The user networks, in memory and on disk; the lock guards every record."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "networks"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._items: dict[str, UserNetwork] = {}

    def load(self) -> list[UserNetwork]:
        for path in sorted(self.dir.glob("*.json")):
            try:
                net = UserNetwork.from_dict(read_json(path))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logging.getLogger(__name__).error("skipping unreadable network record %s: %s", path, exc)
                continue
            self._items[net.id] = net
        return list(self._items.values())

    def save(self, net: UserNetwork) -> None:
        with self.lock:
            if net.id in self._items:
                write_json(self.dir / f"{net.id}.json", net.to_dict())

    def all(self) -> list[UserNetwork]:
        with self.lock:
            return sorted(self._items.values(), key=lambda n: n.created)

    def find(self, ref: str) -> UserNetwork | None:
        """Full id, then name, then unique id prefix, as dockerd resolves a network."""
        with self.lock:
            if ref in self._items:
                return self._items[ref]
            named = [n for n in self._items.values() if n.name == ref]
            if named:
                return named[0]
            matches = [n for n in self._items.values() if ref and n.id.startswith(ref)]
        if len(matches) > 1:
            raise BadParameter(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        return matches[0] if matches else None

    def get(self, ref: str) -> UserNetwork:
        net = self.find(ref)
        if net is None:
            raise NotFound(f"network {ref[:MAX_NAME]} not found")
        return net

    def create(self, name: str, ipam: Ipam, routes: list[ipaddress.IPv4Network], **settings: Any) -> UserNetwork:
        """A name is never taken twice, whatever CheckDuplicate says: libnetwork refuses a second
        local network of one name too, and a name must resolve to one network."""
        with self.lock:
            if name in BUILTIN:
                raise EngineError(f"operation is not permitted on predefined {name} network", 403)
            if any(n.name == name for n in self._items.values()):
                raise Conflict(f"network with name {name} already exists")
            if len(self._items) >= MAX_NETWORKS:
                raise EngineError(f"this engine holds at most {MAX_NETWORKS} networks", 403)
            others = [ipaddress.IPv4Network(n.subnet) for n in self._items.values()]
            if ipam.subnet is None:
                subnet, user = allocate_subnet([*others, *routes]), False
            else:
                subnet, user = ipam.subnet, True
                for taken in (*RESERVED, *others, *routes):
                    if subnet.overlaps(taken):
                        raise EngineError(f"invalid pool request: Pool overlaps with other one on this "
                                          f"address space ({subnet} and {taken})", 403)
            gateway = ipam.gateway or str(subnet.network_address + 1)
            net = UserNetwork(secrets.token_hex(32), name, rfc3339(), str(subnet), gateway, ipam.ip_range,
                              dict(ipam.aux), user, ipam_options=ipam.options, **settings)
            self._items[net.id] = net
            self.save(net)
            return net

    def drop(self, net: UserNetwork) -> None:
        with self.lock:
            self._items.pop(net.id, None)
            (self.dir / f"{net.id}.json").unlink(missing_ok=True)

    def of_container(self, cid: str) -> list[UserNetwork]:
        with self.lock:
            return [n for n in self.all() if cid in n.endpoints]
