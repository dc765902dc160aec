"""Bridge addressing and name resolution: pure functions over the running containers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import EngineError

BRIDGE = "labbr0"
SUBNET = ipaddress.IPv4Network("172.31.0.0/24")
GATEWAY = str(SUBNET.network_address + 1)
HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)


@dataclass(frozen=True)
class HostEntry:
    ip: str
    name: str
    cid: str


def allocate_ip(used: set[str], subnet: ipaddress.IPv4Network = SUBNET) -> str:
    """The lowest free host address after the gateway."""
    gateway = subnet.network_address + 1
    for address in subnet.hosts():
        if address != gateway and str(address) not in used:
            return str(address)
    raise EngineError(f"no free address left in {subnet}")


def render_hosts(entries: list[HostEntry]) -> str:
    """/etc/hosts for a container: localhost plus every running container by name and short id."""
    lines = [f"{e.ip}\t{e.name} {e.cid[:12]}\n" for e in sorted(entries, key=lambda e: e.name) if e.ip]
    return HOSTS_HEADER + "".join(lines)


def resolv_conf(host_text: str) -> str:
    """The node's resolv.conf minus loopback resolvers, which mean nothing in a netns."""
    kept = [
        line for line in host_text.splitlines()
        if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                and line.split()[1].startswith(("127.", "::1")))
    ]
    return "\n".join(kept) + "\n"
