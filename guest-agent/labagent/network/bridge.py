"""The node side of container networking: bridge, netns + veth per container, nftables.

Links and namespaces go through netlink.py/netns.py (stdlib sockets, no fork);
nftables is imported on first use, so the host's unit tests import this without it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from ..errors import EngineError
from . import netns
from .addressing import BRIDGE, GATEWAY, SUBNET
from .interface import SlotWiring
from .netlink import Rtnl, docker_mac
from .nftrules import PortRule, ruleset
from .pool import NETNS_PREFIX, veth_of

log = logging.getLogger(__name__)
NETNS_DIR = netns.NETNS_DIR


def _sysctl(name: str, value: str) -> None:
    try:
        Path("/proc/sys", name.replace(".", "/")).write_text(value)
    except OSError as exc:
        log.warning("cannot set %s=%s: %s", name, value, exc)


def port_in_use(port: int, proto: str, host_ip: str = "") -> bool:
    """A process on the node already listens there; DNAT would silently steal its traffic."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host_ip if host_ip not in ("", "0.0.0.0") else "0.0.0.0", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class Network:
    def __init__(self, bridge: str = BRIDGE, subnet: str = str(SUBNET), gateway: str = GATEWAY) -> None:
        self.bridge = bridge
        self.subnet = subnet
        self.gateway = gateway
        self.prefix = int(subnet.partition("/")[2])
        self._rtnl: Rtnl | None = None
        self._nft: Any = None
        self._nft_lock = threading.Lock()
        self._published: Any = None
        self._pool_rtnl: Rtnl | None = None  # the pool thread's own socket

    @property
    def rtnl(self) -> Rtnl:
        """One netlink socket in the node's namespace, opened on first use."""
        if self._rtnl is None:
            self._rtnl = Rtnl()
        return self._rtnl

    @property
    def pool_rtnl(self) -> Rtnl:
        """The pool thread's own netlink socket: a socket is not shared between threads."""
        if self._pool_rtnl is None:
            self._pool_rtnl = Rtnl()
        return self._pool_rtnl

    @staticmethod
    def netns_name(cid: str) -> str:
        return f"lab-{cid[:12]}"

    def netns_path(self, cid: str) -> str:
        return str(NETNS_DIR / self.netns_name(cid))

    def setup(self) -> None:
        """The bridge with the gateway address, forwarding on (idempotent)."""
        _sysctl("net.ipv4.ip_forward", "1")
        created = self.rtnl.add_bridge(self.bridge)
        index = socket.if_nametoindex(self.bridge)
        if created:
            self.rtnl.no_ipv6_link_local(index)
        self.rtnl.add_address(index, self.gateway, self.prefix)
        self.rtnl.set_up(index)
        _sysctl(f"net.ipv4.conf.{self.bridge}.route_localnet", "1")

    def attach(self, cid: str, ip: str) -> str:
        """A fresh netns with eth0 (ip/24, default via the gateway) wired to the bridge; -> MAC."""
        self.detach(cid)
        return self._wire(self.rtnl, self.netns_name(cid), f"lv{cid[:10]}", ip)

    def _wire(self, rtnl: Rtnl, name: str, veth: str, ip: str) -> str:
        mac = docker_mac(ip)
        inside = netns.create(name)
        try:
            fd = netns.open_fd(name)
            try:
                rtnl.add_veth(veth, socket.if_nametoindex(self.bridge), "eth0", mac, fd)
            finally:
                os.close(fd)
            host_end = socket.if_nametoindex(veth)
            rtnl.no_ipv6_link_local(host_end)
            rtnl.set_up(host_end)
            eth0 = inside.link_index("eth0")
            inside.no_ipv6_link_local(eth0)
            inside.add_address(eth0, ip, self.prefix)
            inside.set_up(eth0)
            inside.add_default_route(self.gateway)
        finally:
            inside.close()
        return mac

    def detach(self, cid: str, veth: str = "") -> None:
        """Remove the veth and the netns; missing pieces are fine (reboots, half starts).

        veth is the record's host-side name: a pooled slot's, or "" for lv<id>.
        """
        self._unwire(self.rtnl, self.netns_name(cid), veth or f"lv{cid[:10]}")

    @staticmethod
    def _unwire(rtnl: Rtnl, name: str, veth: str) -> None:
        with contextlib.suppress(OSError):
            rtnl.delete_link(veth)
        try:
            netns.remove(name)
        except OSError as exc:
            log.warning("cannot remove netns %s: %s", name, exc)

    # the netns pool (pool.NetnsPool drives these) -----------------------------------
    def slot_wiring(self) -> SlotWiring:
        """This network builds the pool's slots itself."""
        return self

    def build_slot(self, name: str, veth: str, ip: str) -> str:
        """A pooled netns, wired like attach() makes one; only the pool thread calls this."""
        return self._wire(self.pool_rtnl, name, veth, ip)

    def destroy_slot(self, name: str, veth: str) -> None:
        """Undo build_slot (pool thread, or after it stopped)."""
        self._unwire(self.pool_rtnl, name, veth)

    def claim(self, slot: str, cid: str) -> None:
        """Give a pooled netns the container's name, which its config.json points at."""
        target = self.netns_name(cid)
        with contextlib.suppress(OSError):
            netns.remove(target)
        netns.rename(slot, target)

    def sweep_pool(self) -> None:
        """Remove slots a previous engine left behind (it was killed before close())."""
        try:
            names = [p.name for p in NETNS_DIR.iterdir() if p.name.startswith(NETNS_PREFIX)]
        except OSError:
            return
        for name in names:
            log.info("removing leftover pooled netns %s", name)
            self._unwire(self.rtnl, name, veth_of(name))

    def publish(self, rules: list[PortRule]) -> None:
        """Replace the labagent table with DNAT for these rules plus masquerading.

        Skipped when the rules equal what this engine last applied: most container starts
        and exits change no published port.
        """
        wanted = ruleset(rules, self.bridge, self.subnet)
        with self._nft_lock:
            if wanted == self._published:
                return
            if self._nft is None:
                import nftables

                self._nft = nftables.Nftables()
            rc, _, err = self._nft.json_cmd(wanted)
            if rc != 0:
                self._published = None
                raise EngineError(f"nftables rejected the port rules: {err.strip()}")
            self._published = wanted

    def port_in_use(self, port: int, proto: str, host_ip: str = "") -> bool:
        return port_in_use(port, proto, host_ip)
