"""The `ip labnets` nftables table: masquerading and isolation for the user-defined bridges.

What Docker's DOCKER-ISOLATION-STAGE chains do: a packet routed into a user bridge is
accepted only when it comes from that same bridge, is a published port (DNATed) or answers a
connection the containers made; anything else (another user bridge, the default bridge,
another node over a link) is dropped. The default bridge keeps its own `ip labagent` table
(nftrules.py), which already drops what enters it from any other link. An internal network's
traffic does not leave its bridge at all. Rebuilt whole from the records, like nftrules.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import nftrules

FAMILY, TABLE = "ip", "labnets"


@dataclass(frozen=True)
class BridgeRule:
    bridge: str
    subnet: str
    internal: bool = False
    masquerade: bool = True


_match = nftrules._match  # the same expression shapes as the default bridge's table


def _rule(chain: str, expr: list[dict[str, Any]], comment: str = "") -> dict[str, Any]:
    return _ours(nftrules._rule(chain, expr, comment))


def _chain(name: str, hook: str, prio: int, kind: str) -> dict[str, Any]:
    return {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name, "type": kind,
                              "hook": hook, "prio": prio, "policy": "accept"}}}


def _ours(command: dict[str, Any]) -> dict[str, Any]:
    """One of nftrules' rules, moved into this table."""
    rule = dict(command["add"]["rule"])
    rule["table"] = TABLE
    return {"add": {"rule": rule}}


def ruleset(bridges: list[BridgeRule]) -> dict[str, Any]:
    table = {"table": {"family": FAMILY, "name": TABLE}}
    commands: list[dict[str, Any]] = [{"add": table}, {"delete": table}, {"add": table}]
    if not bridges:
        return {"nftables": [{"add": table}, {"delete": table}]}
    commands += [_chain("forward", "forward", 0, "filter"), _chain("postrouting", "postrouting", 100, "nat"),
                 _chain("input", "input", 0, "filter")]
    iif, oif = {"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    for b in bridges:
        net, _, plen = b.subnet.partition("/")
        own = _match(saddr, {"prefix": {"addr": net, "len": int(plen)}})
        into = _match(oif, b.bridge)
        if b.internal:
            commands.append(_rule("forward", [_match(iif, b.bridge), _match(oif, b.bridge, "!="), {"drop": None}],
                                  f"internal {b.bridge}"))
        commands += [
            _rule("forward", [into, _match(iif, b.bridge), {"accept": None}]),
            _rule("forward", [into, _match({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}]),
            _rule("forward", [into, _match({"ct": {"key": "state"}}, ["established", "related"], "in"),
                              {"accept": None}]),
            _rule("forward", [into, {"drop": None}], f"isolate {b.bridge}"),
        ]
        if b.masquerade and not b.internal:
            commands.append(_rule("postrouting", [own, _match(oif, b.bridge, "!="), {"masquerade": None}]))
        commands += [
            # a container reaching a sibling through a published port (hairpin)
            _rule("postrouting", [own, _match({"ct": {"key": "status"}}, "dnat", "in"), into,
                                  {"masquerade": None}]),
            # the node's own 127.0.0.1:PORT (route_localnet is on for the bridge)
            _rule("postrouting", [_match(saddr, {"prefix": {"addr": "127.0.0.0", "len": 8}}), into,
                                  {"masquerade": None}]),
        ]
        commands += [_ours(c) for c in nftrules._martians(b.bridge)]
    return {"nftables": commands}
