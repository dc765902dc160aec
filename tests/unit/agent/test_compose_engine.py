"""Engine behaviours docker-compose relies on, each driven the way compose drives it (docker-py,
the real server in this process, fake kernel seams). test_compose.py runs compose itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labagent.engine import Engine
from labagent.errors import BadParameter
from labagent.server import serve

from .fakes import make_seams

docker = pytest.importorskip("docker")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    engine = Engine(tmp_path / "root", make_seams(tmp_path / "seams"))
    engine.startup()
    sock = tmp_path / "run" / "engine.sock"
    server = serve(sock, engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = docker.APIClient(base_url=f"unix://{sock}", timeout=15)
    yield api
    for c in api.containers(all=True):
        api.remove_container(c["Id"], force=True)
    api.close()
    server.shutdown()
    server.server_close()


def test_a_connect_that_names_the_short_id_lists_it_once(client: Any) -> None:
    """compose connects a container's further networks with aliases [service, short id]; it
    checks the short id is there and Docker adds it only when missing."""
    client.create_network("p_front")
    client.create_network("p_back")
    cid = client.create_container("busybox", ["sleep", "30"], name="p_web_1",
                                  host_config=client.create_host_config(network_mode="p_back"),
                                  networking_config=client.create_networking_config(
                                      {"p_back": client.create_endpoint_config(aliases=["web"])}))["Id"]
    client.connect_container_to_network(cid, "p_front", aliases=["web", cid[:12], "www"])
    networks = client.inspect_container(cid)["NetworkSettings"]["Networks"]
    assert networks["p_front"]["Aliases"] == ["web", cid[:12], "www"]
    assert networks["p_back"]["Aliases"] == ["web", cid[:12]]
    client.start(cid)
    networks = client.inspect_container(cid)["NetworkSettings"]["Networks"]
    assert networks["p_front"]["Aliases"].count(cid[:12]) == 1


def hosts_of(client: Any, cid: str) -> list[list[str]]:
    return [line.split() for line in Path(client.inspect_container(cid)["HostsPath"]).read_text().splitlines()]


def test_extra_hosts_land_in_etc_hosts(client: Any) -> None:
    """compose's extra_hosts; host-gateway is the node's address on the default bridge."""
    extra = ["gw:host-gateway", "db.example:10.1.2.3", "six:::1"]
    cid = client.create_container("busybox", ["sleep", "30"],
                                  host_config=client.create_host_config(extra_hosts=extra))["Id"]
    assert client.inspect_container(cid)["HostConfig"]["ExtraHosts"] == extra
    client.start(cid)
    hosts = hosts_of(client, cid)
    assert ["172.31.0.1", "gw"] in hosts and ["10.1.2.3", "db.example"] in hosts and ["::1", "six"] in hosts
    client.create_network("x_net")
    on_net = client.create_container("busybox", ["sleep", "30"], host_config=client.create_host_config(
        extra_hosts={"db.example": "10.1.2.4"}, network_mode="x_net"))["Id"]
    client.start(on_net)
    assert ["10.1.2.4", "db.example"] in hosts_of(client, on_net)


@pytest.mark.parametrize("entry", ["no-address", "two words:1.2.3.4", "x:not-an-ip", "x:1.2.3.4\n5.6.7.8 evil",
                                   ":1.2.3.4", "#x:1.2.3.4", "x:1.2.3.4 evil"])
def test_hostile_extra_hosts_are_refused(client: Any, entry: str) -> None:
    with pytest.raises(docker.errors.APIError) as err:
        client.create_container("busybox", ["true"], host_config=client.create_host_config(extra_hosts=[entry]))
    assert err.value.status_code == 400 and "ExtraHosts" in str(err.value)
    assert not client.containers(all=True)


def test_too_many_extra_hosts_or_links_are_refused(client: Any) -> None:
    for field, value in (("ExtraHosts", [f"h{i}:10.0.0.1" for i in range(257)]),
                         ("Links", [f"c{i}:a{i}" for i in range(65)])):
        res = client._post_json(client._url("/containers/create"),
                                data={"Image": "busybox", "Cmd": ["true"], "HostConfig": {field: value}})
        assert res.status_code == 400 and field in res.json()["message"]


def test_links_on_a_user_network_name_the_linked_container(client: Any) -> None:
    """compose's links:, and the links `docker-compose run` makes to a service's running containers."""
    client.create_network("p_default")
    on_net = client.create_host_config(network_mode="p_default")
    a = client.create_container("busybox", ["sleep", "30"], name="p_a_1", host_config=on_net)["Id"]
    client.start(a)
    b = client.create_container("busybox", ["sleep", "30"], name="p_b_1", host_config=client.create_host_config(
        network_mode="p_default", links={"p_a_1": "alpha", "/p_a_1": "/p_b_1/a_1"}))["Id"]
    assert sorted(client.inspect_container(b)["HostConfig"]["Links"]) == ["/p_a_1:/p_b_1/a_1", "/p_a_1:/p_b_1/alpha"]
    client.start(b)
    a_ip = client.inspect_container(a)["NetworkSettings"]["Networks"]["p_default"]["IPAddress"]
    [a_line] = [line for line in hosts_of(client, b) if line[0] == a_ip]
    assert {"p_a_1", "alpha", "a_1"} <= set(a_line)
    assert "alpha" not in {name for line in hosts_of(client, a) for name in line[1:]}  # links are one-way
    client.remove_container(a, force=True)  # the link then resolves nothing, and b still starts
    client.restart(b, timeout=1)
    assert "alpha" not in {name for line in hosts_of(client, b) for name in line[1:]}


def test_links_are_refused_where_they_cannot_be_honoured(client: Any) -> None:
    client.create_network("q_default")
    client.create_container("busybox", ["sleep", "30"], name="there",
                            host_config=client.create_host_config(network_mode="q_default"))
    cases = [({"there": "t"}, "bridge", "default bridge"),  # legacy links inject env vars there
             ({"missing": "m"}, "q_default", "could not get container for missing"),
             ({"there": "bad alias"}, "q_default", "invalid link"),
             ({"../x": "y"}, "q_default", "invalid link")]
    for links, mode, words in cases:
        with pytest.raises(docker.errors.APIError) as err:
            client.create_container("busybox", ["true"], host_config=client.create_host_config(
                links=links, network_mode=mode))
        assert err.value.status_code == 400 and words in str(err.value)
    assert [c["Names"] for c in client.containers(all=True)] == [["/there"]]


def test_an_empty_host_port_gets_one_the_engine_picks(client: Any) -> None:
    """compose's `ports: ["80"]` and `docker run -p 80` send HostPort ""."""
    made = [client.create_container("busybox", ["sleep", "30"], ports=[80], host_config=client.create_host_config(
        port_bindings={80: None}))["Id"] for _ in range(2)]
    for cid in made:
        client.start(cid)
    picked = []
    for cid in made:
        info = client.inspect_container(cid)
        assert info["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": ""}]}
        [shown] = info["NetworkSettings"]["Ports"]["80/tcp"]
        picked.append(int(shown["HostPort"]))
        assert client.port(cid, 80)[0]["HostPort"] == shown["HostPort"]
    assert len(set(picked)) == 2 and all(32768 <= p <= 60999 for p in picked)
    listed = {c["Id"]: c["Ports"][0]["PublicPort"] for c in client.containers()}
    assert sorted(listed.values()) == sorted(picked)


def test_host_port_picks_skip_what_is_held() -> None:
    from labagent.containers.hostports import FIRST, LAST, assign
    from labagent.containers.model import PortBinding
    from labagent.errors import Conflict

    fixed = PortBinding(80, FIRST, "tcp")
    wanted = [fixed, PortBinding(81, 0, "tcp", ephemeral=True), PortBinding(82, 0, "udp", ephemeral=True)]
    busy = {FIRST + 2}
    got = assign(wanted, {(FIRST + 1, "tcp")}, lambda port, proto, ip: port in busy)
    assert [p.host_port for p in got] == [FIRST, FIRST + 3, FIRST]  # udp is a port space of its own
    kept = assign(got, set(), lambda port, proto, ip: False)
    assert kept == got  # a pick that is still free is kept across starts
    moved = assign(got, {(FIRST + 3, "tcp")}, lambda port, proto, ip: False)
    assert moved[1].host_port == FIRST + 1  # taken meanwhile: picked again
    with pytest.raises(Conflict):
        assign([PortBinding(80, 0, ephemeral=True)], set(), lambda port, proto, ip: port <= LAST)


def test_dns_fields_replace_the_nodes_lines_of_their_kind() -> None:
    from labagent.containers.model import CreateSpec
    from labagent.network import dnsconf

    node = "domain lab\nsearch lab.example\nnameserver 10.0.0.53\noptions edns0\n"
    spec = CreateSpec(image="busybox", image_id="")
    dnsconf.read_into(spec, {"Dns": ["1.1.1.1", "2606:4700::1111"]})
    assert dnsconf.render(node, spec) == ("domain lab\nsearch lab.example\noptions edns0\n"
                                          "nameserver 1.1.1.1\nnameserver 2606:4700::1111\n")
    dnsconf.read_into(spec, {"DnsSearch": ["."], "DnsOptions": ["ndots:2", "rotate"]})
    assert dnsconf.render(node, spec) == "nameserver 10.0.0.53\noptions ndots:2 rotate\n"
    dnsconf.read_into(spec, {})
    assert dnsconf.render(node, spec) == node
    for field, value in (("Dns", ["1.1.1.1\nnameserver 6.6.6.6"]), ("DnsSearch", ["a b"]),
                         ("DnsOptions", ["ndots:1\nnameserver 6.6.6.6"]), ("Dns", ["x"] * 17), ("Dns", "1.1.1.1")):
        with pytest.raises(BadParameter, match=f"HostConfig.{field}"):
            dnsconf.read_into(spec, {field: value})


def test_dns_search_and_options_reach_the_containers_resolv_conf(client: Any) -> None:
    cid = client.create_container("busybox", ["sleep", "30"], host_config=client.create_host_config(
        dns=["10.9.9.9"], dns_search=["svc.example"], dns_opt=["ndots:3"]))["Id"]
    info = client.inspect_container(cid)["HostConfig"]
    assert (info["Dns"], info["DnsSearch"], info["DnsOptions"]) == (["10.9.9.9"], ["svc.example"], ["ndots:3"])
    text = Path(client.inspect_container(cid)["ResolvConfPath"]).read_text().splitlines()
    assert [line for line in text if line.startswith("nameserver")] == ["nameserver 10.9.9.9"]
    assert "search svc.example" in text and "options ndots:3" in text
