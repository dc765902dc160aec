"""HostConfig.ExtraHosts and HostConfig.Links: lines a container's own /etc/hosts gains.

docker-compose sends both: `extra_hosts:` as ExtraHosts, and Links for `links:` and for every
`docker-compose run` of a service that has running containers (it links the one-off to them).
Names resolve through /etc/hosts here (joins.py), so an extra host is a line of its own and a
link is one more name for the linked container's address on a network both share. Legacy
links on the default bridge (which also inject environment variables) are refused instead.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..containers.model import CreateSpec
from ..errors import BadParameter
from . import dnsconf
from .networks import ALIAS_RE

MAX_EXTRA_HOSTS = 256
MAX_LINKS = 64
HOST_GATEWAY = "host-gateway"  # Docker's word for the node's own address
HOSTNAME_RE = dnsconf.DOMAIN_RE  # an extra host's name is checked as a search domain is
CONTAINER_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")


def parse_extra_hosts(value: Any) -> list[str]:
    """"name:address" entries (an IPv6 address keeps its colons), checked, as given."""
    hosts = []
    for entry in dnsconf.string_list(value, "ExtraHosts", MAX_EXTRA_HOSTS):
        name, sep, address = entry.partition(":")
        if not sep or not HOSTNAME_RE.fullmatch(name):
            raise BadParameter(f"HostConfig.ExtraHosts: invalid extra host {entry[:64]!r} (want NAME:ADDRESS)")
        if address != HOST_GATEWAY:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise BadParameter(f"HostConfig.ExtraHosts: invalid IP address in {entry[:64]!r}") from None
        hosts.append(f"{name}:{address}")
    return hosts


def parse_links(value: Any) -> list[str]:
    """"container:alias" (or "container", aliased by its own name), leading slashes dropped."""
    links = []
    for entry in dnsconf.string_list(value, "Links", MAX_LINKS):
        target, _, alias = entry.partition(":")
        target, alias = target.lstrip("/"), alias.rsplit("/", 1)[-1] or target.lstrip("/")
        if not CONTAINER_NAME_RE.fullmatch(target) or not ALIAS_RE.fullmatch(alias):
            raise BadParameter(f"HostConfig.Links: invalid link {entry[:64]!r} (want CONTAINER:ALIAS)")
        links.append(f"{target}:{alias}")
    return links


def read_into(spec: CreateSpec, host: dict[str, Any]) -> None:
    """The name-resolution fields: ExtraHosts and Links here, Dns* in dnsconf.py."""
    spec.extra_hosts = parse_extra_hosts(host.get("ExtraHosts"))
    spec.links = parse_links(host.get("Links"))
    dnsconf.read_into(spec, host)


def split_link(link: str) -> tuple[str, str]:
    target, _, alias = link.partition(":")
    return target, alias


def extra_lines(spec: CreateSpec, gateway: str) -> str:
    """The ExtraHosts lines, host-gateway being the node's address on the default bridge."""
    lines = []
    for entry in spec.extra_hosts:
        name, _, address = entry.partition(":")
        lines.append(f"{gateway if address == HOST_GATEWAY else address}\t{name}\n")
    return "".join(lines)


def shown_links(spec: CreateSpec, name: str) -> list[str] | None:
    """HostConfig.Links as dockerd shows them: "/target:/container/alias"."""
    return [f"/{t}:/{name}/{a}" for t, a in map(split_link, spec.links)] or None
