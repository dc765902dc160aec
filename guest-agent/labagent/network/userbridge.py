"""The kernel side of user-defined networks: one bridge each, a veth per container and network.

Built from the same pieces as bridge.Network (netlink.py, netns.py, libnftables JSON), so it
forks nothing. A container whose first network is a user network gets its netns here (under
the name bridge.Network.netns_name gives it, which its config.json points at); one on the
default bridge keeps the netns bridge.py made and gets one more veth in it per network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import EngineError
from ..libc import CLONE_NEWNET, LIBC, check
from . import netns
from .bridge import Network, _sysctl
from .netlink import Rtnl, docker_mac

log = logging.getLogger(__name__)


class UserBridges:
    def __init__(self) -> None:
        self._rtnl: Rtnl | None = None
        self._lock = threading.Lock()  # one netlink socket, one caller at a time
        self._nft: Any = None
        self._applied: Any = None

    @property
    def rtnl(self) -> Rtnl:
        if self._rtnl is None:
            self._rtnl = Rtnl()
        return self._rtnl

    def add_bridge(self, name: str, gateway: str, prefix: int) -> None:
        """The bridge with the gateway address, up (idempotent: engine start re-makes lost ones)."""
        with self._lock:
            created = self.rtnl.add_bridge(name)
            index = self.rtnl.link_index(name)
            if created:
                self.rtnl.no_ipv6_link_local(index)
            self.rtnl.add_address(index, gateway, prefix)
            self.rtnl.set_up(index)
        _sysctl(f"net.ipv4.conf.{name}.route_localnet", "1")

    def remove_bridge(self, name: str) -> None:
        with self._lock, contextlib.suppress(OSError):
            self.rtnl.delete_link(name)

    def ensure_netns(self, cid: str) -> None:
        """The container's netns (lo up only), unless one is already there."""
        name = Network.netns_name(cid)
        path = netns.NETNS_DIR / name
        if os.path.ismount(path):
            return
        if path.exists():  # a plain file a crash left before its namespace was bound there
            netns.remove(name)
        netns.create(name).close()

    def remove_netns(self, cid: str) -> None:
        try:
            netns.remove(Network.netns_name(cid))
        except OSError as exc:
            log.warning("cannot remove netns of %s: %s", cid[:12], exc)

    def plug(self, cid: str, bridge: str, veth: str, ifname: str, ip: str, prefix: int,
             gateway: str = "") -> str:
        """A veth from `bridge` to `ifname` (ip/prefix) in the container's netns; a gateway
        makes it the default route. -> the container end's MAC."""
        mac = docker_mac(ip)
        name = Network.netns_name(cid)
        fd = netns.open_fd(name)
        try:
            with self._lock:
                with contextlib.suppress(OSError):
                    self.rtnl.delete_link(veth)  # a leftover of a crashed engine
                self.rtnl.add_veth(veth, self.rtnl.link_index(bridge), ifname, mac, fd)
                host_end = self.rtnl.link_index(veth)
                self.rtnl.no_ipv6_link_local(host_end)
                self.rtnl.set_up(host_end)
            inside = _rtnl_in(fd)
        finally:
            os.close(fd)
        try:
            index = inside.link_index(ifname)
            inside.no_ipv6_link_local(index)
            inside.add_address(index, ip, prefix)
            inside.set_up(index)
            if gateway:
                inside.add_default_route(gateway)
        finally:
            inside.close()
        return mac

    def unplug(self, veth: str) -> None:
        """Delete the host end; its peer in the container goes with it. Missing is fine."""
        with self._lock, contextlib.suppress(OSError):
            self.rtnl.delete_link(veth)

    def routes(self) -> str:
        """/proc/net/route, for the subnets the node already reaches (its links)."""
        try:
            return Path("/proc/net/route").read_text()
        except OSError:
            return ""

    def apply(self, ruleset: dict[str, Any]) -> None:
        """Replace the labnets table (skipped when unchanged)."""
        with self._lock:
            if ruleset == self._applied:
                return
            if self._nft is None:
                import nftables

                self._nft = nftables.Nftables()
            rc, _, err = self._nft.json_cmd(ruleset)
            if rc != 0:
                self._applied = None
                raise EngineError(f"nftables rejected the network isolation rules: {err.strip()}")
            self._applied = ruleset


def _rtnl_in(fd: int) -> Rtnl:
    """A netlink socket opened inside the netns `fd` refers to (a short thread enters it).

    setns(2) acts on the calling thread only, so the engine's own threads stay on the node.
    """
    made: list[Rtnl] = []
    failed: list[BaseException] = []

    def inside() -> None:
        try:
            check(LIBC.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")
            made.append(Rtnl())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=inside, name="netns-enter")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]
