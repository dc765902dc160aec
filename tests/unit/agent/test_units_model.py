import dataclasses

import pytest
from labagent.containers.model import Container, CreateSpec, Limits, PortBinding, check_name, parse_publish
from labagent.errors import BadParameter
from labagent.units import parse_bytes, parse_cpus, parse_memory


@pytest.mark.parametrize(("text", "value"), [("64m", 64 << 20), ("64MB", 64 << 20), ("1g", 1 << 30),
                                             ("512MiB", 512 << 20), ("1024", 1024), (7 << 20, 7 << 20)])
def test_sizes_parse_like_docker(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("bad", ["64Q", "-1", "m64", "1.2.3g", "sixty"])
def test_bad_sizes_are_bad_parameters(bad):
    with pytest.raises(BadParameter, match="invalid size"):
        parse_memory(bad)


def test_memory_below_docker_minimum_is_refused():
    with pytest.raises(BadParameter, match="Minimum memory limit allowed is 6MB"):
        parse_memory("1m")
    assert parse_memory(None) == 0


def test_cpus_become_nanocpus():
    assert parse_cpus("0.5") == 500_000_000
    with pytest.raises(BadParameter):
        parse_cpus("half")


def test_publish_specs():
    assert parse_publish("8080:80") == PortBinding(80, 8080, "tcp", "")
    assert parse_publish("127.0.0.1:53:5353/udp") == PortBinding(5353, 53, "udp", "127.0.0.1")
    for bad in ("80", "8080:0", "8080:80/sctp", "x:80"):
        with pytest.raises(BadParameter):
            parse_publish(bad)


def test_container_names():
    assert check_name("/web-1") == "web-1"
    with pytest.raises(BadParameter, match="Invalid container name"):
        check_name("bad name")


def test_container_record_round_trips():
    spec = CreateSpec("busybox", "sha256:x", cmd=["sh"], ports=[PortBinding(80, 8080)],
                         limits=Limits(memory=64 << 20, pids=10))
    c = Container("a" * 64, "web", "2024-01-01T00:00:00.000000000Z", spec)
    again = Container.from_dict(c.to_dict())
    assert again == c
    assert again.spec.ports[0].key == "80/tcp"


def test_record_dict_matches_asdict_and_shares_no_lists():
    spec = CreateSpec("busybox", "sha256:x", cmd=["sh", "-c", "true"], env=["A=1"],
                         ports=[PortBinding(80, 8080, "udp", "10.0.0.1")], limits=Limits(memory=64 << 20))
    c = Container("b" * 64, "db", "2024-01-01T00:00:00.000000000Z", spec)
    c.network.ip = "172.31.0.2"
    data = c.to_dict()
    assert data == dataclasses.asdict(c)
    data["spec"]["cmd"].append("changed")
    assert c.spec.cmd == ["sh", "-c", "true"]
