"""route_localnet=1 on the bridge comes with kube-proxy's drop rule for martian loopback traffic."""

from __future__ import annotations

from typing import Any

from labagent.network.nftrules import ruleset

IIF = {"meta": {"key": "iifname"}}
DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
LOOPBACK = {"prefix": {"addr": "127.0.0.0", "len": 8}}


def rules_of(chain: str, bridge: str = "labbr0") -> list[dict[str, Any]]:
    return [c["add"]["rule"] for c in ruleset([], bridge=bridge)["nftables"]
            if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain]


def test_the_input_chain_is_a_filter_hook() -> None:
    chains = [c["add"]["chain"] for c in ruleset([])["nftables"] if "chain" in c.get("add", {})]
    (chain,) = [c for c in chains if c["name"] == "input"]
    assert (chain["type"], chain["hook"], chain["prio"], chain["policy"]) == ("filter", "input", 0, "accept")


def test_loopback_bound_packets_from_the_bridge_are_dropped_unless_conntrack_knows_them() -> None:
    rules = rules_of("input")
    martian = [{"match": {"op": "==", "left": IIF, "right": "labbr0"}},
               {"match": {"op": "==", "left": DADDR, "right": LOOPBACK}},
               {"match": {"op": "!=", "left": SADDR, "right": LOOPBACK}}]
    assert all(rule["expr"][:3] == martian for rule in rules)
    tails = [rule["expr"][3:] for rule in rules]
    assert tails == [
        [{"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}, {"accept": None}],
        [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
         {"accept": None}],
        [{"drop": None}],  # the last word: nothing else reaches the node's loopback from the bridge
    ]


def test_the_rule_follows_the_bridge_name() -> None:
    assert {r["expr"][0]["match"]["right"] for r in rules_of("input", "br7")} == {"br7"}
