"""The node side of container networking: bridge, netns + veth per container, nftables.

pyroute2 and nftables are imported inside the methods, so the rest of the engine (and
the host's unit tests) import without them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .addressing import BRIDGE, GATEWAY, SUBNET
from .errors import EngineError
from .nftrules import PortRule, ruleset

log = logging.getLogger(__name__)
NETNS_DIR = Path("/run/netns")


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
    _ns_lock = threading.Lock()  # pyroute2's pushns/popns keep a process-global stack

    def __init__(self, bridge: str = BRIDGE, subnet: str = str(SUBNET), gateway: str = GATEWAY) -> None:
        self.bridge = bridge
        self.subnet = subnet
        self.gateway = gateway
        self.prefix = int(subnet.partition("/")[2])

    @staticmethod
    def netns_name(cid: str) -> str:
        return f"lab-{cid[:12]}"

    def netns_path(self, cid: str) -> str:
        return str(NETNS_DIR / self.netns_name(cid))

    def setup(self) -> None:
        """The bridge with the gateway address, forwarding on (idempotent)."""
        from pyroute2 import IPRoute

        _sysctl("net.ipv4.ip_forward", "1")
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=self.bridge):
                ipr.link("add", ifname=self.bridge, kind="bridge")
            index = ipr.link_lookup(ifname=self.bridge)[0]
            have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)}
            if self.gateway not in have:
                ipr.addr("add", index=index, address=self.gateway, prefixlen=self.prefix)
            ipr.link("set", index=index, state="up")
        _sysctl(f"net.ipv4.conf.{self.bridge}.route_localnet", "1")

    @contextlib.contextmanager
    def _in_netns(self, name: str) -> Iterator[Any]:
        from pyroute2 import IPRoute, netns

        with self._ns_lock:
            netns.pushns(name)
            try:
                ipr = IPRoute()  # the socket stays bound to the netns it was opened in
            finally:
                netns.popns()
        with ipr:
            yield ipr

    def attach(self, cid: str, ip: str) -> str:
        """A fresh netns with eth0 (ip/24, default via the gateway) wired to the bridge; -> MAC."""
        from pyroute2 import IPRoute, netns

        name = self.netns_name(cid)
        host_if, peer_if = f"lv{cid[:10]}", f"lp{cid[:10]}"
        self.detach(cid)
        netns.create(name)
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_if, kind="veth", peer=peer_if)
            peer = ipr.link_lookup(ifname=peer_if)[0]
            ipr.link("set", index=peer, net_ns_fd=name)
            bridge = ipr.link_lookup(ifname=self.bridge)[0]
            host = ipr.link_lookup(ifname=host_if)[0]
            ipr.link("set", index=host, master=bridge, state="up")
        with self._in_netns(name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            eth = ipr.link_lookup(ifname=peer_if)[0]
            ipr.link("set", index=eth, ifname="eth0")
            ipr.addr("add", index=eth, address=ip, prefixlen=self.prefix)
            ipr.link("set", index=eth, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway=self.gateway)
            mac = ipr.get_links(eth)[0].get_attr("IFLA_ADDRESS")
        return str(mac)

    def detach(self, cid: str) -> None:
        """Remove the veth and the netns; missing pieces are fine (reboots, half starts)."""
        from pyroute2 import IPRoute, netns

        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=f"lv{cid[:10]}"):
                with contextlib.suppress(Exception):
                    ipr.link("del", index=index)
        name = self.netns_name(cid)
        if (NETNS_DIR / name).exists():
            try:
                netns.remove(name)
            except OSError as exc:
                log.warning("cannot remove netns %s: %s", name, exc)

    def publish(self, rules: list[PortRule]) -> None:
        """Replace the labagent table with DNAT for these rules plus masquerading."""
        import nftables

        nft = nftables.Nftables()
        rc, _, err = nft.json_cmd(ruleset(rules, self.bridge, self.subnet))
        if rc != 0:
            raise EngineError(f"nftables rejected the port rules: {err.strip()}")

    def port_in_use(self, port: int, proto: str, host_ip: str = "") -> bool:
        return port_in_use(port, proto, host_ip)
