"""A container's resolver and extra hosts: HostConfig.Dns, DnsSearch, DnsOptions and ExtraHosts.

Validated at create (the text lands in the container's /etc/resolv.conf and /etc/hosts, so a
value may not carry a newline or another line's syntax) and rendered at each write.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..errors import BadParameter

NAME_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})?")
OPTION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}(:[0-9]{1,6})?")
MAX_ENTRIES = 64


def _list(value: Any, field: str) -> list[str]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_ENTRIES or not all(isinstance(v, str) for v in value):
        raise BadParameter(f"HostConfig.{field} must be a list of at most {MAX_ENTRIES} strings")
    return list(value)


def _ip(text: str, field: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise BadParameter(f"HostConfig.{field}: {text[:64]!r} is not an IP address") from None


def read(host: dict[str, Any]) -> dict[str, list[str]]:
    """The four fields, checked, as inspect shows them."""
    dns = [_ip(s, "Dns") for s in _list(host.get("Dns"), "Dns")]
    search = _list(host.get("DnsSearch"), "DnsSearch")
    for domain in search:
        if not NAME_RE.fullmatch(domain):
            raise BadParameter(f"HostConfig.DnsSearch: invalid search domain {domain[:64]!r}")
    options = _list(host.get("DnsOptions"), "DnsOptions")
    for opt in options:
        if not OPTION_RE.fullmatch(opt):
            raise BadParameter(f"HostConfig.DnsOptions: invalid option {opt[:64]!r}")
    extra = []
    for line in _list(host.get("ExtraHosts"), "ExtraHosts"):
        name, sep, ip = line.partition(":")
        if not sep:
            name, sep, ip = line.partition("=")
        if not sep or not NAME_RE.fullmatch(name):
            raise BadParameter(f"HostConfig.ExtraHosts: invalid entry {line[:64]!r} (want name:ip)")
        if ip == "host-gateway":
            raise BadParameter("HostConfig.ExtraHosts: host-gateway is not supported by this engine "
                               "(give the address)")
        extra.append(f"{name}:{_ip(ip.strip('[]'), 'ExtraHosts')}")
    return {"Dns": dns, "DnsSearch": search, "DnsOptions": options, "ExtraHosts": extra}


def resolv_conf(base: str, conf: dict[str, list[str]]) -> str:
    """The engine's resolv.conf with the container's nameservers, search list or options instead."""
    replaced = {"nameserver": conf.get("Dns"), "search": conf.get("DnsSearch"), "options": conf.get("DnsOptions")}
    lines = [line for line in base.splitlines()
             if not (line.split()[:1] and replaced.get(line.split()[0]))]
    lines += [f"nameserver {ip}" for ip in conf.get("Dns") or []]
    if conf.get("DnsSearch"):
        lines.append("search " + " ".join(conf["DnsSearch"]))
    if conf.get("DnsOptions"):
        lines.append("options " + " ".join(conf["DnsOptions"]))
    return "\n".join(lines) + "\n"


def extra_hosts(conf: dict[str, Any]) -> str:
    """ExtraHosts as /etc/hosts lines, after the engine's own."""
    lines = []
    for entry in conf.get("ExtraHosts") or []:
        name, _, ip = entry.partition(":")
        lines.append(f"{ip}\t{name}\n")
    return "".join(lines)
