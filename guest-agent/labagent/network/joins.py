"""Containers on user-defined networks: connect, disconnect, and what a start or exit wires.

Name resolution is each container's /etc/hosts, rewritten from the networks it is on at every
start, exit, connect and disconnect (Lifecycle.refresh_network calls hosts_text), rather
than a DNS responder like Docker's 127.0.0.11. Every name a container may resolve is known
to the engine when it changes, the file is bind-mounted already, every libc (glibc, musl,
busybox) reads it first, and it needs no listener inside each netns nor DNAT to reach one.
A container sees the name, aliases and short id of each container that shares a network with
it, and nothing of containers on networks it is not on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from ..containers.model import Container, CreateSpec
from ..containers.store import ContainerStore
from ..errors import BadParameter, Conflict, EngineError, NotFound
from ..events import Events
from . import addressing, hostlines, isolation
from .interface import BridgeNetworks
from .networks import BUILTIN, Endpoint, Ipam, NetworkStore, UserNetwork, allocate_ip, parse_proc_routes

log = logging.getLogger(__name__)
DEFAULT_MODES = ("default", "bridge", "none", "")
MAX_LINKS = 32  # eth0..eth31 in one container


def veth_name(cid: str, net_id: str) -> str:
    """The host end of one container's veth on one network: stable, so a restarted engine finds it."""
    return "lu" + hashlib.sha256(f"{cid}:{net_id}".encode()).hexdigest()[:12]


def user_mode(spec: CreateSpec) -> str:
    """The user network a container's NetworkMode names, or ""."""
    return "" if spec.network_mode in DEFAULT_MODES else spec.network_mode


def _with_short_id(aliases: list[str], cid: str) -> list[str]:
    """An endpoint's aliases as Docker lists them: the short id added unless already asked for
    (docker-compose connects with it, and reconnects when it is missing)."""
    return list(aliases) if cid[:12] in aliases else [*aliases, cid[:12]]


class Networks:
    """The user networks as the API and the lifecycle see them."""

    def __init__(self, store: NetworkStore, kernel: BridgeNetworks, containers: ContainerStore) -> None:
        self.store, self.kernel, self.containers = store, kernel, containers
        self.events = Events()  # the engine's bus replaces this one
        self.refresh: Callable[[], None] = lambda: None  # Lifecycle.refresh_network, set by the engine

    # engine start ----------------------------------------------------------------------
    def setup(self) -> None:
        """Load the records and make their bridges again (a node reboot lost them)."""
        for net in self.store.load():
            try:
                self.kernel.add_bridge(net.bridge, net.gateway, net.prefix)
            except OSError as exc:
                log.error("cannot make the bridge of network %s: %s", net.name, exc)
        self.apply_rules()

    def apply_rules(self) -> None:
        self.kernel.apply(isolation.ruleset([isolation.BridgeRule(n.bridge, n.subnet, n.internal, n.masquerade)
                                             for n in self.store.all()]))

    # create, remove, prune --------------------------------------------------------------
    def create(self, name: str, ipam: Ipam, **settings: Any) -> UserNetwork:
        routes = parse_proc_routes(self.kernel.routes())
        net = self.store.create(name, ipam, routes, **settings)
        try:
            self.kernel.add_bridge(net.bridge, net.gateway, net.prefix)
            self.apply_rules()
        except BaseException:
            self.store.drop(net)
            with contextlib.suppress(Exception):
                self.kernel.remove_bridge(net.bridge)
                self.apply_rules()
            raise
        self.events.emit("network", "create", net.id, name=net.name, type="bridge")
        return net

    def remove(self, ref: str) -> None:
        if ref in BUILTIN:
            raise EngineError(f"{ref} is a pre-defined network and cannot be removed", 403)
        net = self.store.get(ref)
        with self.store.lock:
            running = [cid for cid, e in net.endpoints.items() if e.ip]
            if running:
                raise Conflict(f"error while removing network: network {net.name} id {net.id} has active "
                               "endpoints")
            self.store.drop(net)
        self.kernel.remove_bridge(net.bridge)
        self.apply_rules()
        self.events.emit("network", "destroy", net.id, name=net.name, type="bridge")

    def prune(self, keep: Callable[[UserNetwork], bool]) -> list[str]:
        """Remove every network no container is on (running or not), except those keep() holds."""
        removed = []
        for net in self.store.all():
            if net.endpoints or keep(net):
                continue
            with contextlib.suppress(EngineError):
                self.remove(net.id)
                removed.append(net.name)
        return removed

    # connect, disconnect ----------------------------------------------------------------
    def connect(self, ref: str, container_ref: str, aliases: list[str], ipv4: str) -> None:
        if ref in BUILTIN:
            raise BadParameter(f"connecting a container to the predefined {ref} network is not supported "
                               "by this engine (choose it at create)")
        net = self.store.get(ref)
        c = self.containers.get(container_ref)
        if c.spec.network_mode == "none":
            raise BadParameter("container cannot be connected to multiple networks with one of the networks "
                               "in private (none) mode")
        with self.store.lock:
            if c.id in net.endpoints:
                raise EngineError(f"endpoint with name {c.name} already exists in network {net.name}", 403)
            if ipv4:
                allocate_ip(net, ipv4)  # the address's checks now; it is taken at start
            endpoint = Endpoint(aliases=aliases, ipv4_config=ipv4)
            net.endpoints[c.id] = endpoint
            self.store.save(net)
        if c.running:
            try:
                self._plug(c, net, endpoint)
            except BaseException:
                with self.store.lock:
                    net.endpoints.pop(c.id, None)
                    self.store.save(net)
                raise
            self.refresh()

    def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        if ref in BUILTIN:
            raise BadParameter(f"disconnecting a container from the predefined {ref} network is not "
                               "supported by this engine")
        net = self.store.get(ref)
        c = self.containers.get(container_ref)
        with self.store.lock:
            endpoint = net.endpoints.get(c.id)
            if endpoint is None:
                raise EngineError(f"container {c.id} is not connected to network {net.name}", 403)
        if endpoint.ip:
            self._unplug(c.id, net, endpoint)
        with self.store.lock:
            net.endpoints.pop(c.id, None)
            self.store.save(net)
        self.refresh()

    # the lifecycle's hooks ----------------------------------------------------------------
    def check_spec(self, spec: CreateSpec) -> None:
        """404 at create for a network that does not exist, as dockerd answers."""
        for name in self._wanted(spec):
            self.store.get(name)
        if spec.links and not self._wanted(spec):
            raise BadParameter("HostConfig.Links: legacy links on the default bridge are not supported by "
                               "this engine (its containers resolve each other by name; or use a network)")
        for target, _ in map(hostlines.split_link, spec.links):
            try:
                self.containers.get(target)
            except NotFound as err:
                raise BadParameter(f"could not get container for {target}: {err}") from None

    def joined(self, container: Container) -> None:
        """Record the create body's networks as the new container's endpoints."""
        spec = container.spec
        with self.store.lock:
            for name in self._wanted(spec):
                net = self.store.find(name)
                if net is None:  # removed since check_spec: start will say so
                    continue
                # EndpointsConfig may key the NetworkMode's network by its id or by its name
                asked = [e for key, e in spec.networks.items() if self.store.find(key) is net]
                net.endpoints.setdefault(container.id, Endpoint(
                    aliases=list(dict.fromkeys(a for e in asked for a in e.aliases)),
                    ipv4_config=next((e.ipv4 for e in asked if e.ipv4), "")))
                self.store.save(net)

    @staticmethod
    def _wanted(spec: CreateSpec) -> list[str]:
        mode = user_mode(spec)
        return list(dict.fromkeys([*([mode] if mode else []), *spec.networks]))

    def own_netns(self, container: Container) -> bool:
        """A container whose NetworkMode is a user network has its netns made here."""
        return bool(user_mode(container.spec))

    def start(self, container: Container) -> None:
        """Wire every network the container is on (its NetworkMode's first, as eth0)."""
        mode = user_mode(container.spec)
        if mode and self.store.find(mode) is None:
            raise NotFound(f"network {mode} not found")
        if self.own_netns(container):
            self.kernel.ensure_netns(container.id)
        primary = self._primary(container)
        nets = sorted(self.store.of_container(container.id), key=lambda n: n is not primary)
        plugged: list[UserNetwork] = []
        try:
            for net in nets:
                self._plug(container, net, net.endpoints[container.id], announce=False)
                plugged.append(net)
        except BaseException:
            for net in plugged:
                with contextlib.suppress(Exception):
                    self._unplug(container.id, net, net.endpoints[container.id], announce=False)
            raise
        for net in plugged:
            self.events.emit("network", "connect", net.id, container=container.id, name=net.name, type="bridge")

    def stop(self, container: Container) -> None:
        """After an exit (or a failed start): the veths go, the addresses are free again."""
        for net in self.store.of_container(container.id):
            endpoint = net.endpoints.get(container.id)
            if endpoint is not None and endpoint.ip:
                try:
                    self._unplug(container.id, net, endpoint)
                except Exception:
                    log.exception("cannot unplug %s from %s", container.id[:12], net.name)
        if self.own_netns(container):
            self.kernel.remove_netns(container.id)

    def forget(self, cid: str) -> None:
        """The container is removed: it is on no network any more."""
        with self.store.lock:
            for net in self.store.of_container(cid):
                net.endpoints.pop(cid, None)
                self.store.save(net)

    def _primary(self, container: Container) -> UserNetwork | None:
        mode = user_mode(container.spec)
        net = self.store.find(mode) if mode else None
        return net if net is not None and container.id in net.endpoints else None

    def primary_ip(self, container: Container) -> str:
        """The address published ports reach: on its NetworkMode's network, else its first."""
        primary = self._primary(container)
        nets = [primary] if primary else self.store.of_container(container.id)
        for net in nets:
            endpoint = net.endpoints.get(container.id)
            if endpoint is not None and endpoint.ip:
                return endpoint.ip
        return ""

    # wiring ----------------------------------------------------------------------------
    def _plug(self, c: Container, net: UserNetwork, endpoint: Endpoint, announce: bool = True) -> None:
        with self.store.lock:
            ip = allocate_ip(net, endpoint.ipv4_config)
            used = {e.ifname for n in self.store.of_container(c.id) for e in [n.endpoints[c.id]] if e.ip}
            first = 0 if self.own_netns(c) else 1  # eth0 is the default bridge's
            ifname = next((f"eth{i}" for i in range(first, first + MAX_LINKS) if f"eth{i}" not in used), "")
            if not ifname:
                raise EngineError(f"a container joins at most {MAX_LINKS} networks here", 403)
            endpoint.ip, endpoint.ifname, endpoint.endpoint_id = ip, ifname, secrets.token_hex(32)
        try:
            endpoint.mac = self.kernel.plug(c.id, net.bridge, veth_name(c.id, net.id), ifname, ip, net.prefix,
                                            net.gateway if ifname == "eth0" else "")
        except BaseException:
            with self.store.lock:
                endpoint.ip = endpoint.ifname = endpoint.endpoint_id = endpoint.mac = ""
            with contextlib.suppress(Exception):
                self.kernel.unplug(veth_name(c.id, net.id))
            raise
        with self.store.lock:
            self.store.save(net)
        if announce:
            self.events.emit("network", "connect", net.id, container=c.id, name=net.name, type="bridge")

    def _unplug(self, cid: str, net: UserNetwork, endpoint: Endpoint, announce: bool = True) -> None:
        self.kernel.unplug(veth_name(cid, net.id))
        with self.store.lock:
            endpoint.ip = endpoint.ifname = endpoint.endpoint_id = endpoint.mac = ""
            self.store.save(net)
        if announce:
            self.events.emit("network", "disconnect", net.id, container=cid, name=net.name, type="bridge")

    # what the API and /etc/hosts show ----------------------------------------------------
    def hosts_text(self, container: Container, bridge: list[addressing.HostEntry]) -> str:
        """/etc/hosts: the default bridge's entries if it is on it, plus every user network's.

        The endpoints are read under the network lock and the names after it: the lifecycle
        takes the container lock first and this one second, never the other way round.
        """
        with self.store.lock:
            nets = [n for n in self.store.of_container(container.id) if n.endpoints[container.id].ip]
            peers = [(e.ip, cid, list(e.aliases)) for n in nets for cid, e in n.endpoints.items() if e.ip]
        extra = hostlines.extra_lines(container.spec, addressing.GATEWAY)
        if not nets:
            return addressing.render_hosts(bridge) + extra
        lines: dict[str, list[str]] = {}
        for ip, cid, aliases in peers:
            try:
                owner = self.containers.get(cid)
            except NotFound:  # removed meanwhile
                continue
            names = lines.setdefault(ip, [])
            for name in (owner.name, *aliases, cid[:12]):
                if name not in names:
                    names.append(name)
        for ip, alias in self._linked(container, peers):
            names = lines.setdefault(ip, [])
            if alias not in names:
                names.append(alias)
        text = addressing.render_hosts(bridge if container.network.ip else [])
        return text + "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in sorted(lines.items())) + extra

    def _linked(self, container: Container, peers: list[tuple[str, str, list[str]]]) -> list[tuple[str, str]]:
        """(address, alias) of each link: the linked container's address on a network both are on."""
        found = []
        for target, alias in map(hostlines.split_link, container.spec.links):
            try:
                linked = self.containers.get(target)
            except NotFound:  # removed since: the link resolves nothing, as in dockerd
                continue
            ip = next((ip for ip, cid, _ in peers if cid == linked.id and ip), "")
            if ip:
                found.append((ip, alias))
        return found

    def settings_of(self, container: Container) -> dict[str, Any]:
        """NetworkSettings.Networks entries for the user networks the container is on."""
        shown: dict[str, Any] = {}
        with self.store.lock:
            for net in self.store.of_container(container.id):
                e = net.endpoints[container.id]
                shown[net.name] = {
                    "IPAMConfig": {"IPv4Address": e.ipv4_config} if e.ipv4_config else None, "Links": None,
                    "Aliases": _with_short_id(e.aliases, container.id), "NetworkID": net.id,
                    "EndpointID": e.endpoint_id, "Gateway": net.gateway if e.ip else "", "IPAddress": e.ip,
                    "IPPrefixLen": net.prefix if e.ip else 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0, "MacAddress": e.mac, "DriverOpts": None,
                }
        return shown
