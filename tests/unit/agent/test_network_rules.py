from labagent.network.addressing import HostEntry, allocate_ip, render_hosts, resolv_conf
from labagent.network.nftrules import PortRule, ruleset


def exprs(rules, chain):
    return [c["add"]["rule"]["expr"] for c in rules["nftables"]
            if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain]


def test_dnat_for_every_local_address_in_prerouting_and_output():
    rules = ruleset([PortRule("tcp", 8080, "172.31.0.2", 80, cid="abc")])
    cmds = rules["nftables"]
    assert cmds[:3] == [{"add": {"table": {"family": "ip", "name": "labagent"}}},
                        {"delete": {"table": {"family": "ip", "name": "labagent"}}},
                        {"add": {"table": {"family": "ip", "name": "labagent"}}}]
    chains = [c["add"]["chain"] for c in cmds if "chain" in c.get("add", {})]
    hooks = {chain["name"]: chain["hook"] for chain in chains}
    assert hooks == {"prerouting": "prerouting", "output": "output", "postrouting": "postrouting",
                     "forward": "forward", "input": "input"}
    for chain in ("prerouting", "output"):
        (expr,) = exprs(rules, chain)
        assert expr[0]["match"]["left"] == {"fib": {"result": "type", "flags": ["daddr"]}}
        assert expr[0]["match"]["right"] == "local"
        assert expr[1]["match"] == {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                                    "right": 8080}
        assert expr[2] == {"dnat": {"addr": "172.31.0.2", "port": 80}}


def test_host_ip_binding_and_masquerade():
    rules = ruleset([PortRule("udp", 53, "172.31.0.3", 5353, host_ip="10.10.0.1")])
    (expr,) = exprs(rules, "prerouting")
    assert expr[0]["match"] == {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                "right": "10.10.0.1"}
    post = exprs(rules, "postrouting")
    assert post[0][0]["match"]["right"] == {"prefix": {"addr": "172.31.0.0", "len": 24}}
    assert post[0][1]["match"] == {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "labbr0"}
    assert all(e[-1] == {"masquerade": None} for e in post)
    assert exprs(ruleset([]), "prerouting") == []


def test_only_published_ports_and_replies_are_routed_into_the_bridge():
    forward = exprs(ruleset([]), "forward")
    into_bridge = {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "labbr0"}}
    assert all(rule[0] == into_bridge for rule in forward)
    verdicts = [(rule[1].get("match", {}).get("right"), rule[-1]) for rule in forward]
    assert verdicts == [("dnat", {"accept": None}), (["established", "related"], {"accept": None}),
                        ("labbr0", {"accept": None}), (None, {"drop": None})]


def test_addresses_and_hosts():
    assert allocate_ip(set()) == "172.31.0.2"
    assert allocate_ip({"172.31.0.2", "172.31.0.3"}) == "172.31.0.4"
    text = render_hosts([HostEntry("172.31.0.3", "web", "f" * 64), HostEntry("", "down", "e" * 64)])
    assert "172.31.0.3\tweb ffffffffffff\n" in text and "down" not in text
    assert text.startswith("127.0.0.1\tlocalhost")
    assert resolv_conf("nameserver 127.0.0.53\nnameserver 10.0.2.3\nsearch lab\n") == \
        "nameserver 10.0.2.3\nsearch lab\n"
