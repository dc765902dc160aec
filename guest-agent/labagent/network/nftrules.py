"""The whole `ip labagent` nftables table as libnftables JSON, rebuilt from state each time.

Replacing the table in one transaction (add, delete, add) keeps the rules equal to the
engine's records, with no per-rule handles to track across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .addressing import BRIDGE, SUBNET

FAMILY, TABLE = "ip", "labagent"


@dataclass(frozen=True)
class PortRule:
    """Traffic to the node on host_port/proto goes to ip:port in a container."""

    proto: str
    host_port: int
    ip: str
    port: int
    host_ip: str = ""
    cid: str = ""


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _rule(chain: str, expr: list[dict[str, Any]], comment: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
    if comment:
        rule["comment"] = comment
    return {"add": {"rule": rule}}


def _chain(name: str, hook: str, prio: int, kind: str = "nat") -> dict[str, Any]:
    return {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name, "type": kind,
                              "hook": hook, "prio": prio, "policy": "accept"}}}


def _dnat(chain: str, rule: PortRule) -> dict[str, Any]:
    if rule.host_ip and rule.host_ip != "0.0.0.0":
        dest = _match({"payload": {"protocol": "ip", "field": "daddr"}}, rule.host_ip)
    else:  # any address of the node itself, link addresses included
        dest = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    return _rule(chain, [
        dest,
        _match({"payload": {"protocol": rule.proto, "field": "dport"}}, rule.host_port),
        {"dnat": {"addr": rule.ip, "port": rule.port}},
    ], rule.cid[:12])


def ruleset(rules: list[PortRule], bridge: str = BRIDGE, subnet: str = str(SUBNET)) -> dict[str, Any]:
    table = {"table": {"family": FAMILY, "name": TABLE}}
    net, _, plen = subnet.partition("/")
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    oifname = {"meta": {"key": "oifname"}}
    commands: list[dict[str, Any]] = [
        {"add": table}, {"delete": table}, {"add": table},
        _chain("prerouting", "prerouting", -100),
        _chain("output", "output", -100),
        _chain("postrouting", "postrouting", 100),
        _chain("forward", "forward", 0, kind="filter"),
        _chain("input", "input", 0, kind="filter"),
    ]
    for rule in rules:
        commands += [_dnat("prerouting", rule), _dnat("output", rule)]
    masq = {"masquerade": None}
    commands += [
        # containers reaching beyond the bridge leave with the node's address
        _rule("postrouting", [_match(saddr, {"prefix": {"addr": net, "len": int(plen)}}),
                              _match(oifname, bridge, "!="), masq]),
        # a container reaching a sibling through a published port (hairpin)
        _rule("postrouting", [_match(saddr, {"prefix": {"addr": net, "len": int(plen)}}),
                              _match({"ct": {"key": "status"}}, "dnat", "in"),
                              _match(oifname, bridge), masq]),
        # the node's own 127.0.0.1:PORT (needs route_localnet on the bridge)
        _rule("postrouting", [_match(saddr, {"prefix": {"addr": "127.0.0.0", "len": 8}}),
                              _match(oifname, bridge), masq]),
    ]
    # Routed into the bridge from outside (another node over a link, say): only published
    # ports and replies to the containers' own connections; a container is not a host on
    # the lab's network.
    into_bridge = _match(oifname, bridge)
    commands += [
        _rule("forward", [into_bridge, _match({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}]),
        _rule("forward", [into_bridge, _match({"ct": {"key": "state"}}, ["established", "related"], "in"),
                          {"accept": None}]),
        _rule("forward", [into_bridge, _match({"meta": {"key": "iifname"}}, bridge), {"accept": None}]),
        _rule("forward", [into_bridge, {"drop": None}]),
    ]
    commands += _martians(bridge)
    return {"nftables": commands}


def _martians(bridge: str) -> list[dict[str, Any]]:
    """route_localnet=1 on the bridge (for the node's own 127.0.0.1:PORT) also lets a container
    send a crafted packet to 127.0.0.1 and reach whatever the node serves on loopback only.
    kubelet/kube-proxy's KUBE-FIREWALL answer, kept to the bridge: loopback-bound traffic from a
    non-loopback source is dropped unless conntrack knows it (a DNATed port, or a reply).
    """
    loopback = {"prefix": {"addr": "127.0.0.0", "len": 8}}
    martian = [
        _match({"meta": {"key": "iifname"}}, bridge),
        _match({"payload": {"protocol": "ip", "field": "daddr"}}, loopback),
        _match({"payload": {"protocol": "ip", "field": "saddr"}}, loopback, "!="),
    ]
    return [
        _rule("input", [*martian, _match({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}]),
        _rule("input", [*martian, _match({"ct": {"key": "state"}}, ["established", "related"], "in"),
                        {"accept": None}]),
        _rule("input", [*martian, {"drop": None}], "martian loopback traffic"),
    ]


def teardown() -> dict[str, Any]:
    table = {"table": {"family": FAMILY, "name": TABLE}}
    return {"nftables": [{"add": table}, {"delete": table}]}
