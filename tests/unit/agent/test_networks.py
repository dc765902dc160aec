"""User-defined networks through docker-py against the real server (fake kernel seams).

The engine is served in this process so the tests can look at what its fake bridges were
asked to wire; one test runs the subprocess engine (dockerhost.start_engine) too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labagent.engine import Engine
from labagent.network import isolation
from labagent.network.networks import (
    MAX_NETWORKS,
    Endpoint,
    Ipam,
    UserNetwork,
    allocate_ip,
    allocate_subnet,
    parse_proc_routes,
)
from labagent.server import serve

from .dockerhost import start_engine
from .fakes import FakeBridges, make_seams

docker = pytest.importorskip("docker")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, Engine]]:
    seams = make_seams(tmp_path / "seams")
    assert isinstance(seams.bridges, FakeBridges)
    # the node's link 10.10.0.0/24 and a route to 172.18.0.0/24: the pool must avoid both
    seams.bridges.routes_text += ("eth1\t00000A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
                                  "eth2\t000012AC\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")
    engine = Engine(tmp_path / "root", seams)
    engine.startup()
    sock = tmp_path / "run" / "engine.sock"
    server = serve(sock, engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = docker.DockerClient(base_url=f"unix://{sock}", timeout=15)
    yield client, engine
    for c in client.containers.list(all=True):
        c.remove(force=True)
    client.close()
    server.shutdown()
    server.server_close()


def bridges(engine: Engine) -> FakeBridges:
    assert isinstance(engine.seams.bridges, FakeBridges)
    return engine.seams.bridges


def hosts_of(container: Any) -> str:
    container.reload()
    return Path(container.attrs["HostsPath"]).read_text()


def names_of(container: Any) -> set[str]:
    """Every name its /etc/hosts resolves (ids are hex: a substring test would find "db" in one)."""
    return {name for line in hosts_of(container).splitlines() for name in line.split()[1:]}


def run(client: Any, name: str, **kw: Any) -> Any:
    return client.containers.run("busybox", ["sleep", "30"], detach=True, name=name, **kw)


# create, list, inspect, remove ---------------------------------------------------------
def test_create_inspect_list_remove(served) -> None:
    client, engine = served
    net = client.networks.create("app", labels={"tier": "web"})
    attrs = client.api.inspect_network(net.id)
    assert (attrs["Name"], attrs["Id"], attrs["Driver"], attrs["Scope"]) == ("app", net.id, "bridge", "local")
    assert attrs["IPAM"]["Driver"] == "default" and attrs["IPAM"].get("Options") is None
    subnet = attrs["IPAM"]["Config"][0]["Subnet"]
    assert subnet == "172.18.1.0/24"  # 172.18.0.0/24 is routed on the node already
    assert attrs["IPAM"]["Config"][0]["Gateway"] == "172.18.1.1"
    assert attrs["Labels"] == {"tier": "web"} and attrs["Options"] == {} and attrs["Containers"] == {}
    assert bridges(engine).bridges[f"labn{net.id[:10]}"] == ("172.18.1.1", 24)
    names = [n.name for n in client.networks.list()]
    assert {"bridge", "host", "none", "app"} <= set(names)
    assert client.networks.get("app").id == client.networks.get(net.id[:12]).id == net.id
    assert client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Subnet"] == "172.31.0.0/24"
    other = client.networks.create("db")
    assert client.networks.get("db").attrs["IPAM"]["Config"][0]["Subnet"] == "172.18.2.0/24"
    net.remove()
    other.remove()
    assert "app" not in [n.name for n in client.networks.list()]
    assert f"labn{net.id[:10]}" not in bridges(engine).bridges
    with pytest.raises(docker.errors.NotFound, match="network app not found"):
        client.networks.get("app")


def test_duplicates_builtins_and_drivers(served) -> None:
    client, _ = served
    client.networks.create("dup")
    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create("dup", check_duplicate=True)
    assert err.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create("dup", check_duplicate=False)
    assert err.value.status_code == 409 and len(client.networks.list(names=["dup"])) == 1
    for name in ("bridge", "host", "none"):
        with pytest.raises(docker.errors.APIError) as err:
            client.api.remove_network(name)
        assert err.value.status_code == 403
        with pytest.raises(docker.errors.APIError) as err:
            client.networks.create(name)
        assert err.value.status_code == 403
    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create("x", driver="host")
    assert err.value.status_code == 400
    with pytest.raises(docker.errors.APIError, match="enable_icc"):
        client.networks.create("x", options={"com.docker.network.bridge.enable_icc": "false"})
    with pytest.raises(docker.errors.APIError, match="IPv6"):
        client.networks.create("x", enable_ipv6=True)


def test_ipam_config_is_kept_and_checked(served) -> None:
    client, _ = served
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
        subnet="172.28.0.0/16", iprange="172.28.5.0/24", gateway="172.28.5.254",
        aux_addresses={"a": "172.28.1.5"})])
    net = client.networks.create("fixed", ipam=ipam, internal=True, attachable=True)
    attrs = client.api.inspect_network(net.id)
    assert attrs["IPAM"]["Config"] == [{"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24",
                                        "Gateway": "172.28.5.254", "AuxiliaryAddresses": {"a": "172.28.1.5"}}]
    assert attrs["Internal"] is True and attrs["Attachable"] is True
    ctr = client.containers.create("busybox", ["sleep", "30"], network="fixed")
    client.api.disconnect_container_from_network(ctr.id, "fixed")
    client.api.connect_container_to_network(ctr.id, "fixed", ipv4_address="172.28.5.24")
    ctr.start()
    ctr.reload()
    settings = ctr.attrs["NetworkSettings"]["Networks"]["fixed"]
    assert settings["IPAMConfig"]["IPv4Address"] == settings["IPAddress"] == "172.28.5.24"
    second = client.containers.run("busybox", ["sleep", "30"], network="fixed", detach=True)
    second.reload()
    assert second.attrs["NetworkSettings"]["Networks"]["fixed"]["IPAddress"] == "172.28.5.1"  # from IPRange


@pytest.mark.parametrize("pool", [
    {"Subnet": "172.31.0.0/16"},  # holds the default bridge
    {"Subnet": "10.10.0.128/25"},  # inside the node's link
    {"Subnet": "10.0.2.0/24"},  # QEMU's management network
    {"Subnet": "10.0.0.0/8"},  # huge
    {"Subnet": "fd00::/64"},
    {"Subnet": "172.29.0.0/24", "Gateway": "172.30.0.1"},
    {"Subnet": "172.29.0.0/24", "IPRange": "172.29.1.0/25"},
    {"Subnet": "not a subnet"},
])
def test_hostile_subnets_are_refused(served, pool: dict[str, str]) -> None:
    client, _ = served
    with pytest.raises(docker.errors.APIError) as err:
        client.api.create_network("bad", ipam={"Driver": "default", "Config": [pool]})
    assert err.value.status_code in (400, 403)
    assert "bad" not in [n.name for n in client.networks.list()]


def test_overlap_with_another_network_is_refused(served) -> None:
    client, _ = served
    client.api.create_network("one", ipam={"Config": [{"Subnet": "192.168.40.0/24"}]})
    with pytest.raises(docker.errors.APIError) as err:
        client.api.create_network("two", ipam={"Config": [{"Subnet": "192.168.0.0/16"}]})
    assert err.value.status_code == 403 and "overlaps" in str(err.value)


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "../x", "x" * 129, "é", "a\nb"])
def test_hostile_network_names(served, name: str) -> None:
    client, _ = served
    with pytest.raises(docker.errors.APIError) as err:
        client.api.create_network(name)
    assert err.value.status_code == 400


def test_too_many_networks(served) -> None:
    client, engine = served
    for i in range(MAX_NETWORKS):
        engine.networks.store.create(f"n{i}", Ipam(), [])
    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create("one-more")
    assert err.value.status_code == 403 and "at most" in str(err.value)


def test_filters_and_prune(served) -> None:
    client, _ = served
    a = client.networks.create("alpha", labels={"k": "v"})
    client.networks.create("beta")
    used = client.networks.create("gamma")
    ctr = client.containers.create("busybox", ["sleep", "30"], network="gamma")
    names = lambda **f: sorted(n["Name"] for n in client.api.networks(filters=f))  # noqa: E731
    assert names(label="k=v") == ["alpha"]
    assert names(type="builtin") == ["bridge", "host", "none"]
    assert names(type="custom") == ["alpha", "beta", "gamma"]
    assert names(driver="null") == ["none"]
    assert client.api.networks(ids=[a.id[:8]])[0]["Id"] == a.id
    assert names(dangling="true") == ["alpha", "beta", "gamma"]  # created containers have no endpoint yet
    with pytest.raises(docker.errors.APIError):
        client.api.networks(filters={"type": "weird"})
    with pytest.raises(docker.errors.APIError):
        client.api.networks(filters={"nosuch": "x"})
    pruned = client.networks.prune(filters={"label": "k=v"})
    assert pruned["NetworksDeleted"] == ["alpha"]
    assert sorted(client.networks.prune()["NetworksDeleted"]) == ["beta"]  # gamma has a container
    ctr.remove()
    assert client.networks.prune()["NetworksDeleted"] == ["gamma"]
    assert used.id not in [n.id for n in client.networks.list()]


# containers on networks ----------------------------------------------------------------
def test_names_aliases_and_short_ids_resolve_within_a_network_only(served) -> None:
    client, engine = served
    client.networks.create("front")
    client.networks.create("back")
    web = run(client, "web", network="front")
    api = client.containers.create("busybox", ["sleep", "30"], name="api", network="front")
    client.api.disconnect_container_from_network(api.id, "front")
    client.api.connect_container_to_network(api.id, "front", aliases=["service"])
    api.start()
    db = run(client, "db", network="back")
    plain = run(client, "plain")
    web_names, db_names, plain_names = names_of(web), names_of(db), names_of(plain)
    api.reload()
    api_ip = api.attrs["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert f"{api_ip}\tapi service {api.id[:12]}\n" in hosts_of(web)
    assert {"web", web.id[:12], "api", "service"} <= web_names and "web" in names_of(api)
    assert not {"db", "plain", db.id[:12], plain.id[:12]} & web_names
    assert not {"web", "api", "service"} & db_names and "db" in db_names
    assert not {"web", "db", "api"} & plain_names and "plain" in plain_names
    # connecting db to front makes both sides see each other; disconnecting undoes it
    client.networks.get("front").connect(db, aliases=["store"])
    assert "store" in names_of(web) and "web" in names_of(db)
    veths = {v[2] for v in bridges(engine).veths.values() if v[0] == db.id}
    assert veths == {"eth0", "eth1"}
    client.networks.get("front").disconnect(db)
    assert "store" not in names_of(web) and "web" not in names_of(db)
    assert {v[2] for v in bridges(engine).veths.values() if v[0] == db.id} == {"eth0"}


def test_connect_disconnect_running_and_created(served) -> None:
    client, engine = served
    net = client.networks.create("work")
    ctr = run(client, "top")  # on the default bridge
    assert not client.api.inspect_network(net.id)["Containers"]
    net.connect(ctr)
    members = client.api.inspect_network(net.id)["Containers"]
    assert list(members) == [ctr.id] and members[ctr.id]["IPv4Address"].endswith("/24")
    ctr.reload()
    networks = ctr.attrs["NetworkSettings"]["Networks"]
    assert set(networks) == {"bridge", "work"} and networks["work"]["NetworkID"] == net.id
    assert ctr.id[:12] in networks["work"]["Aliases"]
    with pytest.raises(docker.errors.APIError):
        net.connect(ctr)
    with pytest.raises(docker.errors.APIError) as err:
        net.remove()
    assert err.value.status_code == 409
    net.disconnect(ctr)
    assert not client.api.inspect_network(net.id)["Containers"]
    with pytest.raises(docker.errors.APIError):
        net.disconnect(ctr)
    # a created container: recorded, wired at start, unwired at exit
    later = client.containers.create("busybox", ["sleep", "30"])
    net.connect(later)
    assert client.networks.get(net.id).containers == []
    later.start()
    assert client.networks.get(net.id).containers == [later]
    later.kill()
    later.wait(timeout=10)
    assert client.networks.get(net.id).containers == []
    assert not [v for v in bridges(engine).veths.values() if v[0] == later.id]


def test_compose_create_body_joins_at_start(served) -> None:
    client, engine = served
    client.api.create_network("proj_default", check_duplicate=True, attachable=True,
                              labels={"com.docker.compose.network": "default",
                                      "com.docker.compose.project": "proj"})
    body = {"Image": "busybox", "Cmd": ["sleep", "30"], "HostConfig": {"NetworkMode": "proj_default"},
            "NetworkingConfig": {"EndpointsConfig": {"proj_default": {"Aliases": ["web"]}}}}
    res = client.api._post_json(client.api._url("/containers/create"), data=body, params={"name": "proj_web_1"})
    cid = client.api._result(res, True)["Id"]
    info = client.api.inspect_container(cid)
    assert info["HostConfig"]["NetworkMode"] == "proj_default"
    aliases = info["NetworkSettings"]["Networks"]["proj_default"]["Aliases"]
    assert "web" in aliases and cid[:12] in aliases  # compose checks for the short id
    client.api.start(cid)
    info = client.api.inspect_container(cid)
    settings = info["NetworkSettings"]["Networks"]["proj_default"]
    assert settings["IPAddress"].startswith("172.") and settings["Gateway"] and settings["EndpointID"]
    assert "bridge" not in info["NetworkSettings"]["Networks"]
    assert cid in bridges(engine).netns
    assert [v[2] for v in bridges(engine).veths.values() if v[0] == cid] == ["eth0"]
    events = [e for e in engine.events.past(0) if e.type == "network"]
    assert [e.action for e in events] == ["create", "connect"]
    assert events[1].attributes == {"container": cid, "name": "proj_default", "type": "bridge"}
    client.api.remove_container(cid, force=True)
    assert cid not in bridges(engine).netns
    assert client.api.inspect_network("proj_default")["Containers"] == {}


def test_published_ports_reach_a_container_on_a_user_network(served) -> None:
    client, engine = served
    client.networks.create("pub")
    ctr = client.containers.run("busybox", ["sleep", "30"], network="pub", ports={"80/tcp": 18099}, detach=True)
    ctr.reload()
    ip = ctr.attrs["NetworkSettings"]["Networks"]["pub"]["IPAddress"]
    assert [(r.host_port, r.ip) for r in engine.seams.network.rules] == [(18099, ip)]  # type: ignore[attr-defined]


def test_unknown_network_and_bad_endpoint_settings(served) -> None:
    client, _ = served
    with pytest.raises(docker.errors.NotFound, match="network nosuch not found"):
        client.containers.create("busybox", ["true"], network="nosuch")
    client.networks.create("ok")
    with pytest.raises(docker.errors.APIError, match="Links"):
        client.api.create_container("busybox", ["true"], host_config=client.api.create_host_config(
            network_mode="ok"), networking_config={"EndpointsConfig": {"ok": {"Links": ["a:b"]}}})
    with pytest.raises(docker.errors.APIError, match="alias"):
        client.api.create_container("busybox", ["true"], networking_config={"EndpointsConfig": {
            "ok": {"Aliases": ["bad name\n1.2.3.4 evil"]}}})
    with pytest.raises(docker.errors.APIError, match="user defined networks"):
        client.api.create_container("busybox", ["true"], networking_config={"EndpointsConfig": {
            "bridge": {"Aliases": ["x"]}}})
    with pytest.raises(docker.errors.APIError, match="not supported"):
        client.containers.create("busybox", ["true"], network_mode="container:abc")
    with pytest.raises(docker.errors.APIError, match="user configured subnets"):
        client.api.connect_container_to_network(
            client.containers.create("busybox", ["true"]).id, "ok", ipv4_address="172.19.0.9")


def test_subprocess_engine_serves_networks(tmp_path: Path) -> None:
    eng = start_engine(tmp_path / "eng")
    try:
        client = docker.DockerClient(base_url=eng.host, timeout=15)
        net = client.networks.create("sub")
        ctr = client.containers.run("busybox", ["sleep", "30"], network="sub", detach=True, name="s1")
        assert client.networks.get("sub").containers == [ctr]
        assert "s1" in names_of(ctr)
        ctr.remove(force=True)
        net.remove()
        client.close()
    finally:
        eng.stop()


# pure functions ------------------------------------------------------------------------
def test_subnet_pool_skips_what_is_taken() -> None:
    import ipaddress

    taken = [ipaddress.IPv4Network("172.18.0.0/16"), ipaddress.IPv4Network("172.19.0.0/24")]
    assert str(allocate_subnet(taken)) == "172.19.1.0/24"
    routes = parse_proc_routes("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
                               "eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\n"
                               "eth1\t00000A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")
    assert routes == [ipaddress.IPv4Network("10.10.0.0/24")]


def test_address_allocation() -> None:
    net = UserNetwork("a" * 64, "n", "", "10.5.0.0/29", "10.5.0.1", aux={"x": "10.5.0.2"}, user_subnet=True)
    assert allocate_ip(net) == "10.5.0.3"
    for i, ip in enumerate(["10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"]):
        net.endpoints[str(i)] = Endpoint(ip=ip)
    with pytest.raises(Exception, match="full"):
        allocate_ip(net)
    with pytest.raises(Exception, match="in use"):
        allocate_ip(net, "10.5.0.4")
    with pytest.raises(Exception, match="host address"):
        allocate_ip(net, "10.5.0.7")


def test_isolation_rules() -> None:
    rules = isolation.ruleset([isolation.BridgeRule("labna", "172.19.0.0/24"),
                               isolation.BridgeRule("labnb", "172.19.1.0/24", internal=True)])
    text = json.dumps(rules)
    commands = rules["nftables"]
    assert commands[:3] == [{"add": {"table": {"family": "ip", "name": "labnets"}}},
                            {"delete": {"table": {"family": "ip", "name": "labnets"}}},
                            {"add": {"table": {"family": "ip", "name": "labnets"}}}]
    forward = [c["add"]["rule"]["expr"] for c in commands if "rule" in c.get("add", {})
               and c["add"]["rule"]["chain"] == "forward"]
    oif = {"meta": {"key": "oifname"}}
    iif = {"meta": {"key": "iifname"}}
    # into each bridge: from itself, DNAT or replies accepted, then everything else dropped
    for bridge in ("labna", "labnb"):
        into = [e for e in forward if e[0] == {"match": {"op": "==", "left": oif, "right": bridge}}]
        assert into[0][1] == {"match": {"op": "==", "left": iif, "right": bridge}}
        assert into[-1][-1] == {"drop": None}
    # the internal one never leaves its bridge and is not masqueraded
    leaving = [e for e in forward if e[0] == {"match": {"op": "==", "left": iif, "right": "labnb"}}]
    assert leaving == [[leaving[0][0], {"match": {"op": "!=", "left": oif, "right": "labnb"}}, {"drop": None}]]
    assert not [e for e in forward if e[0]["match"]["left"] == iif and e[0]["match"]["right"] == "labna"]
    masq = [c["add"]["rule"]["expr"] for c in commands if "rule" in c.get("add", {})
            and c["add"]["rule"]["chain"] == "postrouting" and c["add"]["rule"]["expr"][1]["match"]["op"] == "!="]
    assert [m[0]["match"]["right"]["prefix"]["addr"] for m in masq] == ["172.19.0.0"]
    assert '"table": "labagent"' not in text
    assert isolation.ruleset([]) == {"nftables": [{"add": {"table": {"family": "ip", "name": "labnets"}}},
                                                  {"delete": {"table": {"family": "ip", "name": "labnets"}}}]}


def test_a_restarted_engine_keeps_its_networks_and_endpoints(served, tmp_path: Path) -> None:
    client, engine = served
    net = client.networks.create("kept")
    ctr = run(client, "keeper", network="kept")
    again = Engine(tmp_path / "root", engine.seams)  # its records only: no second supervisor
    bridges(engine).bridges.clear()  # as after a node reboot
    again.containers.load()
    again.networks.setup()
    assert f"labn{net.id[:10]}" in bridges(engine).bridges
    kept = again.networks.store.get("kept")
    assert kept.endpoints[ctr.id].ip and again.networks.primary_ip(again.containers.get(ctr.id))


def test_hostile_aliases_and_bodies_on_connect(served) -> None:
    client, _ = served
    client.networks.create("edge")
    ctr = client.containers.create("busybox", ["true"])
    for aliases in (["a b"], ["x\n10.0.0.1 node"], ["#"], ["a" * 64], [f"a{i}" for i in range(33)]):
        with pytest.raises(docker.errors.APIError) as err:
            client.api.connect_container_to_network(ctr.id, "edge", aliases=aliases)
        assert err.value.status_code == 400
    with pytest.raises(docker.errors.NotFound):
        client.api.connect_container_to_network("nosuch", "edge")
    with pytest.raises(docker.errors.NotFound):
        client.api.connect_container_to_network(ctr.id, "nosuch")
    assert client.api.inspect_network("edge")["Containers"] == {}
    assert ctr.id not in client.networks.get("edge").attrs["Containers"]


def test_prune_until_and_negated_labels(served) -> None:
    client, _ = served
    client.networks.create("old", labels={"keep": "yes"})
    client.networks.create("new")
    assert client.networks.prune(filters={"until": "1h"})["NetworksDeleted"] == []  # both are younger
    assert client.networks.prune(filters={"label!": "keep"})["NetworksDeleted"] == ["new"]
    with pytest.raises(docker.errors.APIError):
        client.networks.prune(filters={"until": "soon"})
    assert [n.name for n in client.networks.list(names=["old"])] == ["old"]


def test_disconnect_and_destroy_events(served) -> None:
    client, engine = served
    net = client.networks.create("ev")
    ctr = run(client, "evc")
    net.connect(ctr)
    net.disconnect(ctr)
    net.remove()
    actions = [(e.action, e.attributes.get("container", "")) for e in engine.events.past(0) if e.type == "network"]
    assert actions == [("create", ""), ("connect", ctr.id), ("disconnect", ctr.id), ("destroy", "")]


def test_a_failed_plug_rolls_the_start_back(served) -> None:
    client, engine = served
    client.networks.create("a")
    client.networks.create("b")
    ctr = client.containers.create("busybox", ["sleep", "30"], network="a")
    client.networks.get("b").connect(ctr)
    bridges(engine).fail_plug_after = 1  # eth0 is wired, eth1 fails
    with pytest.raises(docker.errors.APIError):
        ctr.start()
    assert ctr.id not in bridges(engine).netns and not bridges(engine).veths
    for name in ("a", "b"):
        endpoint = engine.networks.store.get(name).endpoints[ctr.id]
        assert (endpoint.ip, endpoint.ifname) == ("", "")
    bridges(engine).fail_plug_after = None
    bridges(engine).fail_plug = False
    ctr.start()
    assert sorted(v[2] for v in bridges(engine).veths.values()) == ["eth0", "eth1"]


def test_endpoints_config_may_name_the_network_by_id(served) -> None:
    client, _ = served
    net = client.networks.create("byid")
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "byid"},
            "NetworkingConfig": {"EndpointsConfig": {net.id: {"Aliases": ["svc"]}}}}
    cid = client.api._result(client.api._post_json(client.api._url("/containers/create"), data=body), True)["Id"]
    assert client.api.inspect_container(cid)["NetworkSettings"]["Networks"]["byid"]["Aliases"] == ["svc", cid[:12]]
