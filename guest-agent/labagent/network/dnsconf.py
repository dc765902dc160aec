"""HostConfig.Dns, DnsSearch and DnsOptions: a container's own resolv.conf lines.

As dockerd does, each one given replaces the node's lines of its kind (nameserver, search,
options) and leaves the others; compose sends them for `dns:`, `dns_search:` and `dns_opt:`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..containers.model import CreateSpec
from ..errors import BadParameter

MAX_SERVERS, MAX_SEARCH, MAX_OPTIONS = 16, 16, 16
DOMAIN_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")
OPTION_RE = re.compile(r"[A-Za-z0-9_-]{1,32}(:[0-9]{1,5})?")


def string_list(value: Any, field: str, limit: int) -> list[str]:
    """HostConfig.<field> as a bounded list of strings (absent: empty); hostlines.py uses it too."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(f"HostConfig.{field} must be a list of strings")
    if len(value) > limit:
        raise BadParameter(f"HostConfig.{field}: at most {limit} entries")
    return value


def read_into(spec: CreateSpec, host: dict[str, Any]) -> None:
    servers = []
    for entry in string_list(host.get("Dns"), "Dns", MAX_SERVERS):
        try:
            servers.append(str(ipaddress.ip_address(entry)))
        except ValueError:
            raise BadParameter(f"HostConfig.Dns: {entry[:64]!r} is not an IP address") from None
    search = string_list(host.get("DnsSearch"), "DnsSearch", MAX_SEARCH)
    for entry in search:
        if entry != "." and not DOMAIN_RE.fullmatch(entry):
            raise BadParameter(f"HostConfig.DnsSearch: invalid domain {entry[:64]!r}")
    options = string_list(host.get("DnsOptions"), "DnsOptions", MAX_OPTIONS)
    for entry in options:
        if not OPTION_RE.fullmatch(entry):
            raise BadParameter(f"HostConfig.DnsOptions: invalid option {entry[:64]!r}")
    spec.dns, spec.dns_search, spec.dns_options = servers, search, options


def render(node_text: str, spec: CreateSpec) -> str:
    """node_text (the node's resolv.conf, loopback resolvers dropped) with the spec's lines;
    a search list of "." alone means none (the node's search and domain lines dropped)."""
    drop = {kind for kind, given in (("nameserver", spec.dns), ("search", spec.dns_search),
                                     ("domain", spec.dns_search), ("options", spec.dns_options)) if given}
    if not drop:
        return node_text
    kept = [line for line in node_text.splitlines() if (line.split()[:1] or [""])[0] not in drop]
    lines = [f"nameserver {server}" for server in spec.dns]
    domains = [d for d in spec.dns_search if d != "."]
    if domains:
        lines.append(f"search {' '.join(domains)}")
    if spec.dns_options:
        lines.append(f"options {' '.join(spec.dns_options)}")
    return "\n".join([*kept, *lines]) + "\n"
